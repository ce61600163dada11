% titles = {s.name: s.title for s in steps}
% rebase('base.tpl', title='Set-up: ' + titles.get(step, 'done'), scripts=['backup.js', 'connect.js', 'wizard.js'], styles=['backup.css'])
% MARKS = {'done': ('✔', 'done'), 'skipped': ('⤼', 'skipped'), '': ('○', 'to do')}
<nav class="steps" aria-label="Set-up steps">
<ol>
% for s in steps:
%   mark, said = MARKS[states[s.name]]
  <li class="state-{{said.replace(' ', '-')}}"><a href="/wizard/{{s.name}}"{{!' aria-current="step"' if s.name == step else ''}}><span aria-hidden="true">{{mark}}</span> {{s.title}} <span class="vh">({{said}})</span></a></li>
% end
  <li><a href="/wizard/done"{{!' aria-current="step"' if step == 'done' else ''}}>Summary</a></li>
</ol>
</nav>
<section class="wizard" aria-labelledby="step-h">
% if step == 'clinic':
<h1 id="step-h">The clinic's name</h1>
<p>It is shown at the top of every page, so everyone knows which box they are looking at.</p>
<form class="stack narrow" data-api method="post" action="/api/wizard/clinic">
  <label for="clinic_name">Clinic name</label>
  <input id="clinic_name" name="clinic_name" value="{{site['clinic_name']}}" maxlength="80" required autofocus autocomplete="organization">
  <button type="submit">Save and go on</button><output></output>
</form>
% elif step == 'time-zone':
<h1 id="step-h">Time zone</h1>
<p>Times on these pages (when a study arrived, who opened what) and the nightly backup follow the
clinic's time zone. Your browser's is chosen for you.</p>
<form class="stack narrow" data-api method="post" action="/api/wizard/time-zone">
  <label for="time_zone">Time zone</label>
% include('time_zone_select.tpl', selected=site['time_zone'], time_zones=time_zones)
  <button type="submit">Save and go on</button><output></output>
</form>
% elif step == 'ae-title':
<h1 id="step-h">Lightbox's AE title</h1>
<p>Every device on a DICOM network has a name, its <em>AE title</em>. The ultrasound and X-ray units
will send their images to this one. <strong>{{site['aet_setting']}}</strong> is fine unless another
system in the clinic already uses it. Up to 16 characters; capital letters and digits are safest.</p>
<form class="stack narrow" data-api method="post" action="/api/wizard/ae-title">
  <label for="aet">AE title</label>
  <input id="aet" name="aet" value="{{site['aet']}}" maxlength="16" required autofocus autocomplete="off" spellcheck="false">
  <p class="help">You can change it later on the Admin page; it holds from the next connection on, without a restart.</p>
  <button type="submit">Save and go on</button><output></output>
</form>
% elif step == 'modality':
<h1 id="step-h">Connect your first modality</h1>
% include('connect_values.tpl', since=0, after=0)
<form class="inline" data-api method="post" action="/api/wizard/modality" id="modality-next">
  <button type="submit">{{'Go on' if states['modality'] == 'done' else 'Skip for now'}}</button><output></output>
</form>
% elif step == 'backup':
<h1 id="step-h">Backup</h1>
%   if configured:
<p class="done-note">✔ The backup is set up: see its status on the <a href="/admin/backup">Backup page</a>.</p>
<form class="inline" data-api method="post" action="/api/wizard/backup">
  <button type="submit">Go on</button><output></output>
</form>
%   else:
<p class="notice" role="alert" id="not-backed-up"><strong>Not backed up yet.</strong> If this box's disk fails
or the box is stolen, every image on it is lost. Set up an encrypted copy in a cloud bucket now, or later
on the Backup page (the Admin page warns until it is done).</p>
%     include('backup_setup.tpl')
%   end
% elif step == 'https':
<h1 id="step-h">Secure connections (HTTPS)</h1>
%   if https['served']:
<p>This box also answers over HTTPS (port {{https['port']}}). Over HTTPS, nobody else on the network can read
the images and passwords on their way, or pass for this box.</p>
%     include('https_check.tpl', https=https)
%     include('https_form.tpl', https=https, action='/api/wizard/https', button='Save and go on')
%   else:
<p>HTTPS is off on this box (<code>https_port = 0</code>).</p>
<form class="inline" data-api method="post" action="/api/wizard/https">
  <button type="submit">Go on</button><output></output>
</form>
%   end
% elif step == 'done':
<h1 id="step-h">Set-up summary</h1>
<p>Everything here can be changed again later, where the last column says.</p>
<div class="table-wrap"><table class="cards" id="summary">
<thead><tr><th scope="col">Step</th><th scope="col">State</th><th scope="col">Later</th></tr></thead>
<tbody>
%   for s in steps:
%     mark, said = MARKS[states[s.name]]
<tr><td class="name" data-label="Step">{{s.title}}</td><td data-label="State">{{mark}} {{said}}</td><td data-label="Later"><a href="{{s.later}}">{{'Admin page' if s.later.startswith('/admin#') else 'Connect a modality' if s.later == '/admin/connect' else 'Backup page'}}</a></td></tr>
%   end
</tbody></table></div>
%   if states['backup'] != 'done':
<p class="notice" role="alert"><strong>Not backed up.</strong> <a href="/wizard/backup">Set up the backup</a> as soon as you can.</p>
%   end
<p><a class="button" href="/">Go to the studies</a></p>
% end
% if step not in ('done', 'modality') and states[step] != 'done':
<form class="inline skip-step" data-api method="post" action="/api/wizard/{{step}}">
  <input type="hidden" name="state" value="skipped">
  <button type="submit" class="secondary">{{'Skip: no backup for now' if step == 'backup' else 'Skip this step'}}</button><output></output>
</form>
% end
</section>
