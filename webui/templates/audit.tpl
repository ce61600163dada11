% rebase('base.tpl', title='Audit trail')
% from urllib.parse import urlencode
% f = data['filter']
% kept = {k: v for k, v in f.items() if v}
% page_url = lambda cursor: '/admin/audit' + ('?' + urlencode({**kept, **cursor}) if kept or cursor else '')
<h1>Audit trail</h1>
<p>Who viewed, downloaded or changed what, from where and when; the newest first. Event types after DICOM PS3.15 A.5.</p>
<form class="filters" method="get" action="/admin/audit" role="search" aria-label="Filter the audit trail">
  <div class="field"><label for="a-event">Event</label>
    <select id="a-event" name="event"><option value="">Any</option>
% for code, label in data['event_types'].items():
      <option value="{{code}}"{{!' selected' if f['event'] == code else ''}}>{{label}}</option>
% end
    </select></div>
  <div class="field"><label for="a-user">User</label>
    <input id="a-user" name="user" value="{{f['user']}}" list="a-users" size="12" autocomplete="off">
    <datalist id="a-users">
% for name in user_names:
      <option value="{{name}}"></option>
% end
    </datalist></div>
  <label class="check"><input type="checkbox" name="failures" value="1"{{!' checked' if f['failures'] else ''}}> Failures only</label>
  <button type="submit">Show</button>
% if kept:
  <a href="/admin/audit">Show all</a>
% end
</form>
% if data['events']:
<div class="table-wrap"><table class="audit cards">
<thead><tr><th scope="col">When</th><th scope="col">User</th><th scope="col">From</th><th scope="col">Event</th><th scope="col">Study</th><th scope="col">Detail</th></tr></thead>
<tbody>
%   for e in data['events']:
<tr{{!' class="failed"' if e['outcome'] else ''}}>
  <td class="when date" data-label="When">{{when(e['at'])}}</td>
  <td class="user" data-label="User">{{e['user_name']}}</td>
  <td class="from" data-label="From">{{e['address']}}</td>
  <td class="event full" data-label="Event">{{data['event_types'].get(e['event'], e['event'])}}
    <span class="muted">{{e['event']}}, {{data['actions'].get(e['action'], e['action'])}}</span>
%     if e['outcome']:
    <strong class="outcome">✖ failed ({{e['outcome']}})</strong>
%     end
  </td>
%     if e['study_uid']:
  <td class="study full" data-label="Study">
%       include('study_link.tpl', uid=e['study_uid'], label=e['study'])
  </td>
%     else:
  <td class="study full" data-label="Study"></td>
%     end
  <td class="detail full" data-label="Detail">{{e['detail']}}</td>
</tr>
%   end
</tbody></table></div>
% else:
<p>No events{{' match these filters' if kept else ' yet'}}.</p>
% end
<nav class="pages" aria-label="Pages">
% if data['newer'] is not None:
  <a href="{{page_url({})}}">Newest</a>
%   if data['newer']:
  <a id="newer" rel="prev" href="{{page_url(data['newer'])}}">← Newer</a>
%   end
% end
% if data['older']:
  <a id="older" rel="next" href="{{page_url(data['older'])}}">Older →</a>
% end
</nav>
