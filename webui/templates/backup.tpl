% rebase('base.tpl', title='Backup', scripts=['backup.js'], styles=['backup.css'])
% st, act = info['status'], info['activity']
% busy = act['running'] or act['asked']
<h1>Backup</h1>
<div id="warnings">
% for w in info['warnings']:
<p class="notice" role="alert" data-warning="{{w['code']}}">{{w['text']}}</p>
% end
</div>

% if st['configured']:
%   last, verify = st['last_run'], st['last_verify']
<section aria-labelledby="status-h" class="screen-only">
<h2 id="status-h">Status</h2>
<dl class="figures" id="backup-status">
  <dt>Bucket</dt><dd>s3://{{st['target']['bucket']}}/{{st['target']['prefix']}}{{(' at ' + st['target']['endpoint']) if st['target']['endpoint'] else ' (AWS S3)'}}</dd>
  <dt>Schedule</dt><dd>{{st['schedule']}}{{(' at ' + conf['backup_time']) if st['schedule'] == 'nightly' else ''}}</dd>
  <dt>Last success</dt><dd id="last-success">{{when(st['last_success_at'])}}</dd>
  <dt>Last run</dt><dd id="last-run">{{'never' if last is None else (when(last['finished']) + (': ok' if last['ok'] else ': FAILED, ' + last.get('error', '')))}}</dd>
  <dt>Pending</dt><dd id="pending">{{st['pending_objects']}} objects, {{size(st['pending_bytes'])}}</dd>
  <dt>Lag</dt><dd>{{duration(st['lag_seconds']) if st['pending_objects'] else 'none'}}</dd>
  <dt>In the bucket</dt><dd>{{st['objects']}} objects, {{size(st['bytes'])}} ({{st['verified_objects']}} verified, {{st['deleted_retained']}} deleted and kept for retention)</dd>
  <dt>Last verified restore</dt><dd id="last-verified">{{when(st['last_verified_restore_at'])}}</dd>
  <dt>Last verification</dt><dd>{{'never' if verify is None else (when(verify['finished']) + (': ok, %d objects checked' % verify.get('checked', 0) if verify['ok'] else ': FAILED, %d problems' % len(verify.get('problems', []))))}}</dd>
</dl>
<div class="actions">
  <form class="inline" data-api method="post" action="/api/backup/run">
    <button type="submit"{{!' disabled' if busy else ''}}>Back up now</button><output></output>
  </form>
  <form class="inline" data-api method="post" action="/api/backup/verify">
    <button type="submit"{{!' disabled' if busy else ''}}>Verify a sample now</button><output></output>
  </form>
</div>
<p id="activity" role="status" aria-live="polite"{{!' data-busy="1"' if busy else ''}}>
% if act['running']:
  {{'Backing up' if act['running']['kind'] == 'backup' else 'Verifying'}} since {{when(act['running']['started'])}}{{(': %d of %d' % (act['running']['done'], act['running']['total'])) if act['running']['total'] else ''}}…
% elif act['asked']:
  Starting: {{', '.join(act['asked'])}}…
% elif act['refused']:
  Not started: {{act['refused']}}
% end
</p>
</section>

<section aria-labelledby="schedule-h" class="screen-only">
<h2 id="schedule-h">Schedule</h2>
<form class="stack narrow" data-api method="post" action="/api/backup/schedule">
% include('backup_schedule.tpl', conf=conf, schedules=schedules)
  <button type="submit">Save the schedule</button><output></output>
</form>
</section>
% else:
% include('backup_setup.tpl')
% end
