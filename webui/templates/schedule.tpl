% rebase('base.tpl', title='Schedule')
% STATE = {'SCHEDULED': 'Scheduled', 'IN PROGRESS': 'In progress', 'COMPLETED': 'Completed', 'DISCONTINUED': 'Discontinued', 'CANCELLED': 'Cancelled'}
<h1>Schedule</h1>
<p>The worklist modalities fetch (Modality Worklist, AE title of Lightbox): today's and later orders{{' and done ones' if show_done else ''}}.
<a href="/schedule{{'' if show_done else '?done=1'}}">{{'Hide done orders' if show_done else 'Show done orders'}}</a></p>
% if not items:
<p id="no-items">Nothing scheduled.</p>
% else:
<div class="table-wrap"><table class="cards" id="worklist">
<thead><tr><th scope="col">When</th><th scope="col">Patient</th><th scope="col">Procedure</th><th scope="col">Modality</th><th scope="col">Station</th><th scope="col">Accession</th><th scope="col">State</th><th scope="col">Images</th><th scope="col"></th></tr></thead>
<tbody>
% for it in items:
<tr data-item="{{it['id']}}"{{!' class="discontinued"' if it['state'] == 'DISCONTINUED' else ''}}>
  <td class="date">{{dicom_date(it['start_date'])}} {{dicom_time(it['start_time'])}}</td>
  <td class="name">{{person(it['patient_name'])}} <span class="muted">{{it['patient_id']}}{{(' · ' + it['species']) if it['species'] else ''}}{{(' · owner ' + person(it['responsible_person'])) if it['responsible_person'] else ''}}</span></td>
  <td>{{it['requested_procedure_description'] or it['step_description']}}</td>
  <td>{{it['modality']}}</td><td data-short="station">{{it['station_aet']}}</td><td data-short="accession">{{it['accession']}}</td>
  <td class="state">{{STATE.get(it['state'], it['state'])}}{{(': ' + it['discontinued_reason']) if it['discontinued_reason'] else ''}}</td>
  <td>{{!('<a href="/studies/%s">%s</a>' % (it['study_uid'], plural(it['images'], 'image'))) if it['images'] and it['accession'] else ''}}</td>
  <td>
%   if user.is_admin and it['state'] == 'SCHEDULED':
    <a href="/schedule?edit={{it['id']}}#order">Edit</a>
    <form method="post" action="/schedule/{{it['id']}}/cancel" class="inline"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Cancel order</button></form>
%   end
  </td>
</tr>
% end
</tbody></table></div>
% end

% if user.is_admin:
<section aria-labelledby="order-h" id="order">
<h2 id="order-h">{{'Change order %s' % editing['accession'] if editing else 'Schedule an order'}}</h2>
% if not editing:
<form method="get" action="/schedule" class="inline" role="search">
  <label>Patient already in Lightbox: <input name="patient" value="{{term}}" placeholder="name or patient ID"></label>
  <button type="submit">Find</button>
</form>
%   if found and not study_uid:
<ul id="patients">
%     for i, p in enumerate(found):
  <li><a href="/schedule?patient={{term}}&amp;pick={{i}}#order">{{person(p['patient_name'])}} ({{p['patient_id']}}{{(', ' + p['species']) if p['species'] else ''}}{{(', owner ' + person(p['responsible_person'])) if p['responsible_person'] else ''}})</a></li>
%     end
</ul>
%   elif term:
<p>No patient found: type the new one below.</p>
%   end
% end
% f = lambda name: form.get(name, '')
<form method="post" action="/schedule{{'/%d' % editing['id'] if editing else ''}}" class="stack" id="order-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <fieldset><legend>Patient (or animal and owner)</legend>
    <label>Name (Family^Given) <input name="patient_name" value="{{f('patient_name')}}" maxlength="64"></label>
    <label>Patient ID <input name="patient_id" value="{{f('patient_id')}}" maxlength="64"></label>
    <label>Born <input type="date" name="birth_date" value="{{'%s-%s-%s' % (f('birth_date')[:4], f('birth_date')[4:6], f('birth_date')[6:]) if f('birth_date') else ''}}"></label>
    <label>Sex <select name="sex">
%   for v, label in (('', '—'), ('F', 'female'), ('M', 'male'), ('O', 'other')):
      <option value="{{v}}"{{!' selected' if f('sex') == v else ''}}>{{label}}</option>
%   end
    </select></label>
    <label>Species <input name="species" value="{{f('species')}}" maxlength="64"></label>
    <label>Breed <input name="breed" value="{{f('breed')}}" maxlength="64"></label>
    <label>Owner (responsible person) <input name="responsible_person" value="{{f('responsible_person')}}" maxlength="64"></label>
    <label>Owner's role <input name="responsible_person_role" value="{{f('responsible_person_role') or ('OWNER' if f('species') else '')}}" maxlength="16" placeholder="OWNER"></label>
    <label>Responsible organization <input name="responsible_organization" value="{{f('responsible_organization')}}" maxlength="64"></label>
  </fieldset>
  <fieldset><legend>Procedure</legend>
    <label>Procedure <input name="requested_procedure_description" value="{{f('requested_procedure_description')}}" maxlength="64" required></label>
    <label>Modality <input name="modality" value="{{f('modality')}}" maxlength="16" list="modalities" required></label>
    <datalist id="modalities">
%   for m in ('US', 'CR', 'DX', 'CT', 'MR', 'XA', 'ES', 'OP', 'IO'):
      <option value="{{m}}">
%   end
    </datalist>
    <label>Station (AE title) <input name="station_aet" value="{{f('station_aet')}}" maxlength="16" list="stations"></label>
    <datalist id="stations">
%   for aet in stations:
      <option value="{{aet}}">
%   end
    </datalist>
    <label>Date <input type="date" name="start_date" value="{{'%s-%s-%s' % (f('start_date')[:4], f('start_date')[4:6], f('start_date')[6:]) if len(f('start_date')) == 8 else f('start_date')}}" required></label>
    <label>Time <input type="time" name="start_time" value="{{'%s:%s' % (f('start_time')[:2], f('start_time')[2:4]) if f('start_time') else ''}}"></label>
    <label>Performing physician <input name="performing_physician" value="{{f('performing_physician')}}" maxlength="64"></label>
    <label>Referring physician <input name="referring_physician" value="{{f('referring_physician')}}" maxlength="64"></label>
    <label>Accession number <input name="accession" value="{{f('accession')}}" maxlength="16" placeholder="made by Lightbox if empty"></label>
  </fieldset>
  <button type="submit">{{'Save changes' if editing else 'Schedule'}}</button>
</form>
</section>
% end
