% rebase('base.tpl', title='Studies', scripts=['studies.js'])
% f = list['filter']
<h1>Studies</h1>
<form id="filters" class="filters" role="search" method="get" action="/">
  <div class="field grow">
    <label for="q">Search name, ID, accession, owner, species or breed</label>
    <input id="q" name="q" type="search" value="{{f['q']}}" autocomplete="off" autofocus
           aria-describedby="status">
  </div>
  <div class="field">
    <label for="date">Study date</label>
    <select id="date" name="date">
% for value, label in date_choices:
      <option value="{{value}}"{{!' selected' if f['date'] == value else ''}}>{{label}}</option>
% end
    </select>
  </div>
  <div class="field range"{{!'' if f['date'] == 'range' else ' hidden'}}>
    <label for="from">From</label>
    <input id="from" name="from" type="date" value="{{f['from']}}">
  </div>
  <div class="field range"{{!'' if f['date'] == 'range' else ' hidden'}}>
    <label for="to">To</label>
    <input id="to" name="to" type="date" value="{{f['to']}}">
  </div>
  <div class="field">
    <label for="modality">Modality</label>
    <select id="modality" name="modality">
      <option value="">Any</option>
% for m in list['modalities']:
      <option value="{{m}}"{{!' selected' if f['modality'].upper() == m else ''}}>{{m}}</option>
% end
    </select>
  </div>
  <input type="hidden" name="sort" value="{{f['sort']}}">
  <input type="hidden" name="order" value="{{f['order']}}">
  <button type="submit">Search</button>
</form>
<p id="status" class="status" role="status" aria-live="polite">{{plural(len(list['studies']), 'study', 'studies')}} shown{{' (more on the next page)' if list['more'] else ''}} · {{list['total_studies']}} in the archive</p>
<div class="table-wrap">
<table id="studies" class="studies cards" data-last-change="{{list['last_change']}}">
<thead><tr>
% for key, label in (('name', 'Patient'), ('patient_id', 'Patient ID'), ('birth_date', 'Born'), (None, 'Sex'), ('date', 'Study date'), ('description', 'Description'), ('modalities', 'Modalities'), ('accession', 'Accession'), ('images', 'Images')):
%   if key:
%     sorted_here = f['sort'] == key
  <th scope="col" aria-sort="{{('descending' if f['order'] == 'desc' else 'ascending') if sorted_here else 'none'}}">
    <button type="button" class="sort" data-sort="{{key}}">{{label}}<span class="arrow" aria-hidden="true">{{('▼' if f['order'] == 'desc' else '▲') if sorted_here else ''}}</span></button>
  </th>
%   else:
  <th scope="col">{{label}}</th>
%   end
% end
</tr></thead>
<tbody>
% for s in list['studies']:
%   vet = [s['species'], s['breed'], 'owner ' + person(s['owner']) if s['owner'] else '']
<tr>
  <td class="patient full" data-label="Patient"><a href="/studies/{{s['study_uid']}}">{{person(s['patient_name']) or '(no name)'}}</a>
%   if any(vet):
    <span class="vet">{{' · '.join(v for v in vet if v)}}</span>
%   end
  </td>
  <td class="pid" data-label="Patient ID" data-short="ID">{{s['patient_id']}}</td>
  <td class="born date" data-label="Born" data-short="born">{{dicom_date(s['birth_date'])}}</td>
  <td class="sex" data-label="Sex">{{s['sex']}}</td>
  <td class="when date" data-label="Study date">{{dicom_date(s['study_date'])}}</td>
  <td class="desc" data-label="Description">{{s['description']}}</td>
  <td class="mod" data-label="Modalities">{{' '.join(s['modalities'])}}</td>
  <td class="acc" data-label="Accession" data-short="acc.">{{s['accession']}}</td>
  <td class="count" data-label="Images">{{plural(s['num_instances'], 'image')}}{{' in %d series' % s['num_series'] if s['num_series'] > 1 else ''}}</td>
</tr>
% end
</tbody>
</table>
</div>
<nav class="pages" aria-label="Pages">
% from urllib.parse import urlencode
% base = {k: v for k, v in f.items() if v and k != 'page'}
% if list['page'] > 1:
  <a id="prev" rel="prev" href="/?{{urlencode({**base, 'page': list['page'] - 1})}}">← Previous page</a>
% end
  <span>Page {{list['page']}}</span>
% if list['more']:
  <a id="next" rel="next" href="/?{{urlencode({**base, 'page': list['page'] + 1})}}">Next page →</a>
% end
</nav>
