% rebase('base.tpl', title='Admin', scripts=['wizard.js'])
% size = lambda n: '%.1f GB' % (n / 1e9) if n >= 1e8 else '%.1f MB' % (n / 1e6) if n >= 1e5 else '%.0f kB' % (n / 1e3)
% c, d = info['counts'], info['disk']
<h1>Admin</h1>
% if not info['backed_up']:
<p class="notice" role="alert" id="not-backed-up"><strong>Not backed up.</strong> If this box's disk fails or
is stolen, every image on it is lost. <a href="/admin/backup">Set up the backup</a>.</p>
% end
% if info['setup_steps_left']:
<p class="notice" id="setup-left">Set-up not finished: {{', '.join(info['setup_steps_left'])}}.
<a href="/wizard">Go on with the set-up</a></p>
% end
<section aria-labelledby="archive-h">
<h2 id="archive-h">Archive</h2>
<dl class="figures">
  <dt>Version</dt><dd>Lightbox {{info['version']}}</dd>
  <dt>Patients</dt><dd>{{c['patients']}}</dd>
  <dt>Studies</dt><dd>{{c['studies']}}</dd>
  <dt>Series</dt><dd>{{c['series']}}</dd>
  <dt>Images</dt><dd>{{c['instances']}}</dd>
  <dt>Stored</dt><dd>{{size(d['stored_bytes'])}}</dd>
  <dt>Disk free</dt><dd>{{size(d['free_bytes'])}} of {{size(d['total_bytes'])}} ({{'%.0f' % (100 * d['free_bytes'] / d['total_bytes']) if d['total_bytes'] else 0}} %)</dd>
</dl>
</section>

<section aria-labelledby="site-h">
<h2 id="site-h">This box</h2>
% site = info['site']
<form class="stack narrow" data-api method="post" action="/api/site" id="site-form">
  <label for="clinic_name">Clinic name</label>
  <input id="clinic_name" name="clinic_name" value="{{site['clinic_name']}}" maxlength="80" autocomplete="organization">
  <label for="time_zone">Time zone</label>
% include('time_zone_select.tpl', selected=site['time_zone'], time_zones=time_zones)
  <p class="help">Every time on these pages, and the nightly backup, follow it.</p>
  <label for="aet">Lightbox's AE title</label>
  <input id="aet" name="aet" value="{{site['aet']}}" maxlength="16" required autocomplete="off" spellcheck="false">
  <p class="help">The name modalities send to; a change holds from the next connection on, no restart
  (change it on the units too). The <code>aet</code> setting says {{site['aet_setting']}}.</p>
  <button type="submit">Save</button><output></output>
</form>
<p><a href="/admin/connect">Connect a modality</a>: the values to type into an ultrasound or X-ray unit, and a live check.
<a href="/wizard">The set-up steps</a>.</p>
</section>

<section aria-labelledby="https-h">
<h2 id="https-h">Secure connections (HTTPS)</h2>
% h = info['https']
% if h['served']:
<p>HTTPS: <a href="{{h['url']}}">{{h['url']}}</a>, with {{'a certificate this box made (self-signed)' if h['made_here'] else "the clinic's own certificate (tls_certificate)"}}.
<a href="/admin/certificate.pem" id="certificate-download">Download the certificate</a> (PEM) to install it as trusted on the clinic's computers.</p>
%   include('https_check.tpl', https=h)
%   include('https_form.tpl', https=h, action='/api/https', button='Save')
% else:
<p>HTTPS is off on this box (<code>https_port = 0</code>).</p>
% end
</section>

<section aria-labelledby="users-h">
<h2 id="users-h">Users</h2>
<div class="table-wrap"><table class="users cards">
<thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Added</th><th scope="col">Change</th></tr></thead>
<tbody>
% for u in info['users']:
<tr>
  <td class="name" data-label="Name">{{u['name']}}</td><td data-label="Role">{{u['role']}}</td><td class="date" data-label="Added" data-short="added">{{when(u['created_at'])}}</td>
  <td class="full" data-label="Change">
    <form class="inline" data-api method="post" action="/api/users/{{u['name']}}/password">
      <label>New password for {{u['name']}} <input name="password" type="password" minlength="{{min_password}}" autocomplete="new-password" required></label>
      <button type="submit">Set password</button><output></output>
    </form>
%   if u['login_wait_s'] > 0:
    <form class="inline" data-api method="post" action="/api/users/{{u['name']}}/unlock">
      <button type="submit">Allow {{u['name']}}'s logins again</button>
      <output>Wrong passwords from many addresses: logins from new addresses wait {{int(u['login_wait_s'])}} s.</output>
    </form>
%   end
%   if u['name'] != user.name:
    <form class="inline" data-api data-method="DELETE" data-confirm="Remove user {{u['name']}}?" method="post" action="/api/users/{{u['name']}}">
      <button type="submit">Remove {{u['name']}}</button><output></output>
    </form>
%   end
  </td>
</tr>
% end
</tbody></table></div>
<h3>Add a user</h3>
<form class="stack narrow" data-api method="post" action="/api/users">
  <label for="new-name">User name</label><input id="new-name" name="name" required autocomplete="off">
  <label for="new-role">Role</label>
  <select id="new-role" name="role"><option value="viewer">viewer (browse, view, download)</option><option value="admin">admin (also users and settings)</option></select>
  <label for="new-password">Password (at least {{min_password}} characters)</label>
  <input id="new-password" name="password" type="password" minlength="{{min_password}}" autocomplete="new-password" required>
  <button type="submit">Add user</button><output></output>
</form>
</section>

<section aria-labelledby="nodes-h">
<h2 id="nodes-h">DICOM nodes</h2>
% if info['nodes']:
<div class="table-wrap"><table class="cards">
<thead><tr><th scope="col">AE title</th><th scope="col">Name</th><th scope="col">Address</th><th scope="col">Allowed</th></tr></thead>
<tbody>
%   for n in info['nodes']:
<tr><td class="name" data-label="AE title">{{n['aet']}}</td><td data-label="Name">{{n['name']}}</td><td data-label="Address">{{n['host']}}:{{n['port']}}</td><td data-label="Allowed">{{', '.join(n['allowed']) or 'nothing'}}</td></tr>
%   end
</tbody></table></div>
% else:
<p>No nodes yet.</p>
% end
<p><a href="/admin/devices#nodes-h">Add, change or test nodes on the Devices page</a></p>
</section>

<section aria-labelledby="settings-h">
<h2 id="settings-h">Settings</h2>
<p>Read from <code>lightbox.toml</code> (<code>--config</code> or <code>$LIGHTBOX_CONFIG</code>),
<code>LIGHTBOX_*</code> environment variables and command-line flags; change them there and restart
Lightbox. Values that differ from the default are marked. A backup schedule saved on the
<a href="/admin/backup">Backup page</a> takes precedence over <code>backup_schedule</code>, a
device policy chosen on the <a href="/admin/devices">Devices page</a> over <code>device_policy</code>, and the
AE title saved under <a href="#site-h">This box</a> over <code>aet</code>.</p>
<div class="table-wrap"><table class="settings cards">
<thead><tr><th scope="col">Setting</th><th scope="col">Value</th><th scope="col">Meaning</th></tr></thead>
<tbody>
% for st in info['settings']:
<tr><td class="name" data-label="Setting"><code>{{st['name']}}</code></td>
  <td class="full" data-label="Value" data-short="=">{{st['value']}}{{' (changed; default %s)' % (st['default'],) if st['value'] != st['default'] else ''}}</td>
  <td class="full muted" data-label="Meaning">{{st['help']}}</td></tr>
% end
</tbody></table></div>
</section>

<section aria-labelledby="activity-h">
<h2 id="activity-h">Recent activity</h2>
<div class="cols">
<div>
<h3>Archive changes</h3>
<ul class="log">
% for ch in info['recent_changes']:
  <li><time>{{when(ch['at'])}}</time> {{ch['kind']}}
%   if ch['study_uid']:
   —
%     include('study_link.tpl', uid=ch['study_uid'], label=ch['study'])
%   end
  </li>
% end
</ul>
</div>
<div>
<h3>Users' actions</h3>
<ul class="log">
% for e in info['recent_activity']:
  <li><time>{{when(e['at'])}}</time> {{e['event']}}{{' (failed)' if e['outcome'] else ''}} · {{e['user_name'] or '-'}} · {{e['detail']}}</li>
% end
</ul>
<p><a href="/admin/audit">The whole audit trail</a></p>
</div>
</div>
</section>
