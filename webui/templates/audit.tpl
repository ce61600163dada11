% rebase('base.tpl', title='Audit trail')
% import time
<h1>Audit trail</h1>
<p>Who viewed, downloaded or changed what, from where and when. Event types after DICOM PS3.15 A.5.</p>
<div class="table-wrap"><table class="audit">
<thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Action</th><th scope="col">Outcome</th><th scope="col">User</th><th scope="col">From</th><th scope="col">Study</th><th scope="col">Detail</th></tr></thead>
<tbody>
% for e in data['events']:
<tr>
  <td data-label="When">{{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e['at']))}}</td>
  <td data-label="Event">{{e['event']}}</td>
  <td data-label="Action">{{e['action']}}</td>
  <td data-label="Outcome">{{'success' if e['outcome'] == 0 else 'failure (%d)' % e['outcome']}}</td>
  <td data-label="User">{{e['user_name']}}</td>
  <td data-label="From">{{e['address']}}</td>
  <td data-label="Study">
%   if e['study_uid']:
    <a href="/studies/{{e['study_uid']}}">open</a>
%   end
  </td>
  <td data-label="Detail">{{e['detail']}}</td>
</tr>
% end
</tbody></table></div>
% if data['more']:
<p><a href="/admin/audit?before={{data['events'][-1]['at']}}">Older events →</a></p>
% end
