% rebase('base.tpl', title='Devices', scripts=['devices.js'])
% from urllib.parse import quote
% url = lambda aet, action: '/api/devices/%s/%s' % (quote(aet, safe=''), action)
% node_url = lambda aet, action='': '/api/nodes/%s%s' % (quote(aet, safe=''), '/' + action if action else '')
% announced = {s['aet']: s for s in info['discovered'] if s['aet']}
% card = {d['aet']: i for i, d in enumerate(info['devices'])}
% STATES = {'new': 'New (learned)', 'approved': '✔ Approved', 'refused': '✖ Refused — waiting for approval', 'ignored': 'Ignored'}
% MAY = {'store': 'send images', 'find': 'query (C-FIND)', 'get': 'retrieve (C-GET)', 'move': 'retrieve via C-MOVE', 'commit': 'ask for storage commitment'}
% NODE_MAY = {**MAY, 'store': 'receive studies'}
% OPERATIONS = {'find': 'query Lightbox (C-FIND)', 'get': 'retrieve from Lightbox (C-GET)', 'move': 'have Lightbox send studies to a node (C-MOVE)', 'store': 'receive studies from Lightbox (C-MOVE destination, forwarding)', 'commit': 'ask Lightbox for storage commitment (N-ACTION; the report may come back to its port)'}
<h1 id="devices-h" data-version="{{info['version']}}">Devices</h1>

<section aria-labelledby="policy-h">
<h2 id="policy-h">Who may connect</h2>
<form class="stack" data-api method="post" action="/api/devices/policy" id="policy-form">
  <fieldset class="choices">
    <legend>Device policy (now: <strong id="policy-now">{{info['policy']}}</strong>)</legend>
    <label><input type="radio" name="policy" value="learning"{{!' checked' if info['policy'] == 'learning' else ''}}>
      Learning: accept any device and list it here</label>
    <label><input type="radio" name="policy" value="locked"{{!' checked' if info['policy'] == 'locked' else ''}}>
      Locked: only approved devices and known nodes may store, query or retrieve; others are refused and listed for approval</label>
  </fieldset>
  <button type="submit">Save policy</button><output></output>
</form>
</section>

<div class="cols wide-first">
<section aria-labelledby="learned-h">
<h2 id="learned-h">Learned devices ({{len(info['devices'])}})</h2>
% if not info['devices']:
<p>None yet: every device that connects to Lightbox is listed here.</p>
% end
% for i, d in enumerate(info['devices']):
%   found = announced.get(d['aet'])
%   quirks = [q for q, on in (('character set %s' % d['charset_override'], d['charset_override']), ('private SOP classes', d['accept_private_sop_classes']), ('lenient AE title', d['lenient_aet'])) if on]
<article class="device state-{{d['status']}}" data-aet="{{d['aet']}}" id="device-{{i}}" aria-labelledby="dev{{i}}-h">
  <h3 id="dev{{i}}-h">{{d['name'] or d['aet']}} <span class="state">{{STATES.get(d['status'], d['status'])}}</span></h3>
%   a = d['access']
  <p class="access">{{a['reason']}}</p>
  <dl class="access">
    <dt>May now</dt><dd class="may">{{', '.join(MAY[op] for op in a['may']) if a['may'] else 'nothing: every association is refused'}}</dd>
    <dt>Lightbox sends to it</dt><dd class="receives">{{'yes (C-MOVE destination, forwarding)' if a['receives'] else 'no: approve it with its DICOM port' if d['status'] != 'approved' else 'no: its DICOM port is unknown, enter it under Edit' if d['port'] is None else 'no: it is not allowed to receive studies (store)'}}</dd>
  </dl>
  <dl>
    <dt>AE title</dt><dd>{{d['aet']}}</dd>
    <dt>Host</dt><dd>{{d['host'] or '—'}}</dd>
    <dt>Port</dt><dd>{{d['port'] or '— (unknown)'}}</dd>
    <dt>Device type</dt><dd>{{found['device_type'] if found and found['device_type'] else '—'}}</dd>
    <dt>Implementation</dt><dd>{{d['implementation_version'] or '—'}} <span class="uid">{{d['implementation_class_uid']}}</span></dd>
    <dt>First seen</dt><dd>{{when(d['first_seen'])}}</dd>
    <dt>Last seen</dt><dd>{{when(d['last_seen'])}}</dd>
    <dt>Received</dt><dd>{{plural(d['studies_received'], 'study', 'studies')}}, {{plural(d['images_received'], 'image')}}</dd>
    <dt>Associations</dt><dd>{{d['associations']}} accepted, {{d['refused']}} refused</dd>
    <dt>Proposed</dt><dd>{{plural(len(d['sop_classes']), 'SOP class', 'SOP classes')}}, {{plural(len(d['transfer_syntaxes']), 'transfer syntax', 'transfer syntaxes')}}</dd>
    <dt>Quirks</dt><dd>{{', '.join(quirks) or 'none'}}</dd>
    <dt>Last error</dt><dd class="last-error">{{d['last_error'] or 'none'}}{{' (%s)' % when(d['last_error_at']) if d['last_error'] else ''}}</dd>
  </dl>
%   if d['status'] != 'approved':
  <form class="approve" data-api method="post" action="{{url(d['aet'], 'approve')}}">
    <div class="field"><label for="dev{{i}}-ahost">Host</label><input id="dev{{i}}-ahost" name="host" value="{{d['host']}}" size="15"></div>
    <div class="field"><label for="dev{{i}}-aport">Its DICOM port</label><input id="dev{{i}}-aport" name="port" type="number" min="1" max="65535" value="{{d['port'] or (found['port'] if found else '')}}" placeholder="e.g. 104" aria-describedby="dev{{i}}-ahelp"></div>
    <button type="submit">Approve {{d['aet']}}</button><output></output>
    <p class="help" id="dev{{i}}-ahelp">With its port, Lightbox can also send it studies and test it. Without one it may send images, nothing more.</p>
  </form>
%   end
  <div class="actions">
%   if d['status'] != 'ignored':
    <form class="inline" data-api method="post" action="{{url(d['aet'], 'ignore')}}"><button type="submit" class="secondary">Ignore</button><output></output></form>
%   end
    <form class="inline" data-echo method="post" action="{{url(d['aet'], 'echo')}}"><button type="submit" class="secondary">Test (C-ECHO)</button><output class="echo-result"></output></form>
  </div>
  <details>
    <summary>Rename, edit, quirks</summary>
    <form class="inline" data-api method="post" action="{{url(d['aet'], 'rename')}}">
      <label>Name <input name="name" value="{{d['name']}}" autocomplete="off"></label>
      <button type="submit">Rename</button><output></output>
    </form>
    <form class="grid-form" data-api method="post" action="{{url(d['aet'], 'edit')}}">
      <label for="dev{{i}}-aet">AE title</label><input id="dev{{i}}-aet" name="aet" value="{{d['aet']}}" maxlength="16" required>
      <label for="dev{{i}}-host">Host</label><input id="dev{{i}}-host" name="host" value="{{d['host']}}">
      <label for="dev{{i}}-port">Port</label><input id="dev{{i}}-port" name="port" type="number" min="1" max="65535" value="{{d['port'] or ''}}">
      <fieldset class="choices"><legend>Once approved with a port, it may</legend>
        <input type="hidden" name="allowed" value="">
%   for op in info['operations']:
        <label><input type="checkbox" name="allowed" value="{{op}}"{{!' checked' if op in d['allowed'] else ''}}> {{OPERATIONS[op]}}</label>
%   end
      </fieldset>
      <button type="submit">Save</button><output></output>
    </form>
    <form class="grid-form" data-api method="post" action="{{url(d['aet'], 'edit')}}">
      <label for="dev{{i}}-cs">Character set override</label>
      <input id="dev{{i}}-cs" name="charset_override" value="{{d['charset_override']}}" placeholder="e.g. ISO_IR 100" aria-describedby="dev{{i}}-cs-help">
      <p class="help" id="dev{{i}}-cs-help">For a unit whose files lie about their encoding; empty: as the files say.</p>
      <fieldset class="choices"><legend>Quirks</legend>
        <input type="hidden" name="accept_private_sop_classes" value="no">
        <label><input type="checkbox" name="accept_private_sop_classes" value="yes"{{!' checked' if d['accept_private_sop_classes'] else ''}}> Accept private SOP classes</label>
        <input type="hidden" name="lenient_aet" value="no">
        <label><input type="checkbox" name="lenient_aet" value="yes"{{!' checked' if d['lenient_aet'] else ''}}> Lenient AE title (know it by its address)</label>
      </fieldset>
      <button type="submit">Save quirks</button><output></output>
    </form>
  </details>
</article>
% end
</section>

<section aria-labelledby="discovered-h">
<h2 id="discovered-h">Found on the network ({{len(info['discovered'])}})</h2>
% if info['discovered']:
<div class="table-wrap"><table class="discovered">
<thead><tr><th scope="col">Name</th><th scope="col">AE title</th><th scope="col">Host</th><th scope="col">Port</th><th scope="col">Type</th><th scope="col">Seen</th></tr></thead>
<tbody>
%   for s in info['discovered']:
<tr><td data-label="Name">{{s['name'].split('._dicom')[0]}}</td><td data-label="AE title">{{s['aet'] or '—'}}</td><td data-label="Host">{{s['host']}}</td>
  <td data-label="Port">{{s['port']}}</td><td data-label="Type">{{s['device_type'] or '—'}}</td>
  <td data-label="Seen"><span class="date">{{when(s['first_seen'])}}</span> – <span class="date">{{when(s['last_seen'])}}</span>{{'' if s['present'] else ' (gone)'}}</td></tr>
%   end
</tbody></table></div>
% else:
<p>No DICOM services announced on the network (DNS-SD), or discovery is off.</p>
% end
</section>
</div>

<section aria-labelledby="nodes-h">
<h2 id="nodes-h">DICOM nodes ({{len(info['nodes'])}})</h2>
<p>The devices Lightbox talks to by name: workstations and archives that may query or retrieve,
and the destinations it sends studies to. An approved device with its port is a node too.
% if info['query_retrieve_from'] == 'any':
Any device may query and retrieve (setting <code>query_retrieve_from = any</code>); a node only as its boxes allow.
% else:
Only nodes may query and retrieve, each as its boxes allow.
% end
</p>
% if info['nodes']:
<div class="table-wrap"><table class="nodes cards">
<thead><tr><th scope="col">AE title</th><th scope="col">Name</th><th scope="col">Address</th><th scope="col">May</th><th scope="col">Change</th></tr></thead>
<tbody>
%   for k, n in enumerate(info['nodes']):
<tr data-aet="{{n['aet']}}">
  <td class="name" data-label="AE title">{{n['aet']}}
%     if n['aet'] in card:
    <a class="muted" href="#device-{{card[n['aet']]}}">(learned device)</a>
%     end
  </td>
  <td data-label="Name">{{n['name']}}</td>
  <td data-label="Address">{{n['host']}}:{{n['port']}}{{' (TLS)' if n['tls'] else ''}}</td>
  <td class="full" data-label="May">{{', '.join(NODE_MAY[op] for op in n['allowed']) or 'nothing'}}</td>
  <td class="full" data-label="Change">
    <form class="inline" data-echo method="post" action="{{node_url(n['aet'], 'echo')}}"><button type="submit" class="secondary">Test<span class="vh"> {{n['aet']}}</span> (C-ECHO)</button><output class="echo-result"></output></form>
    <form class="inline" data-api data-method="DELETE" data-confirm="Remove node {{n['aet']}}? Lightbox will no longer send to it{{' or let it query and retrieve' if set(n['allowed']) - {'store'} else ''}}." method="post" action="{{node_url(n['aet'])}}"><button type="submit" class="secondary">Remove<span class="vh"> {{n['aet']}}</span></button><output></output></form>
    <details><summary>Change<span class="vh"> {{n['aet']}}</span></summary>
%     include('node_form.tpl', prefix='node%d' % k, action=node_url(n['aet'], 'edit'), node=n, operations=OPERATIONS, button='Save ' + n['aet'])
    </details>
  </td>
</tr>
%   end
</tbody></table></div>
% else:
<p>No nodes yet.</p>
% end
<h3 id="add-node-h">Add a node</h3>
% include('node_form.tpl', prefix='new-node', action='/api/nodes', node=None, operations=OPERATIONS, button='Add node')
</section>

<section aria-labelledby="forward-h">
<h2 id="forward-h">Forwarding</h2>
<p>Each study, once stable, is sent to the destination of every rule it matches (empty filters match all).</p>
% fw = info['forwarding']
% if fw['rules']:
<div class="table-wrap"><table class="rules">
<thead><tr><th scope="col">Rule</th><th scope="col">Destination</th><th scope="col">Modality</th><th scope="col">Calling AE</th><th scope="col">Remove</th></tr></thead>
<tbody>
%   for r in fw['rules']:
<tr><td data-label="Rule">{{r['id']}}</td><td data-label="Destination">{{r['destination']}}</td><td data-label="Modality">{{r['modality'] or 'any'}}</td><td data-label="Calling AE">{{r['calling_ae'] or 'any'}}</td>
  <td data-label="Remove"><form class="inline" data-api data-method="DELETE" data-confirm="Remove forwarding rule {{r['id']}}?" method="post" action="/api/forwarding/rules/{{r['id']}}"><button type="submit" class="secondary">Remove rule {{r['id']}}</button><output></output></form></td></tr>
%   end
</tbody></table></div>
% else:
<p>No forwarding rules.</p>
% end
<h3>Add a rule</h3>
% if fw['destinations']:
<form class="filters" data-api method="post" action="/api/forwarding/rules">
  <div class="field"><label for="fw-dest">Destination</label><select id="fw-dest" name="destination">
%   for aet in fw['destinations']:
    <option>{{aet}}</option>
%   end
  </select></div>
  <div class="field"><label for="fw-mod">Modality (optional)</label><input id="fw-mod" name="modality" size="6" placeholder="US"></div>
  <div class="field"><label for="fw-cae">Calling AE (optional)</label><input id="fw-cae" name="calling_ae" maxlength="16"></div>
  <button type="submit">Add rule</button><output></output>
</form>
% else:
<p>No destination yet: approve a device with its port, or <a href="#nodes-h">add a node</a> that may receive studies (store).</p>
% end
<h3>Retry queue ({{len(fw['queue'])}} waiting)</h3>
% if fw['queue']:
<div class="table-wrap"><table class="queue">
<thead><tr><th scope="col">Job</th><th scope="col">Study</th><th scope="col">Destination</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Next try</th><th scope="col">Last error</th></tr></thead>
<tbody>
%   for j in fw['queue']:
<tr><td data-label="Job">{{j['id']}}</td><td data-label="Study">
%     include('study_link.tpl', uid=j['study_uid'], label=j['study'])
  </td><td data-label="Destination">{{j['destination']}}</td>
  <td data-label="State">{{j['state']}}</td><td data-label="Attempts">{{j['attempts']}}</td><td class="date" data-label="Next try">{{when(j['next_attempt_at'])}}</td><td data-label="Last error">{{j['last_error'] or '—'}}</td></tr>
%   end
</tbody></table></div>
% else:
<p>Nothing waiting.</p>
% end
</section>
