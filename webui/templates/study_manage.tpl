% # The study page's admin part: delete, fix the patient's details, merge (corrections.js).
% s = detail['study']
% family, _, rest = s['patient_name'].split('=')[0].partition('^')
% given = rest.split('^')[0]
<section class="manage" id="manage" aria-labelledby="manage-title" data-study-uid="{{s['study_uid']}}"
  data-patient-id="{{s['patient_id']}}" data-patient-name="{{s['patient_name']}}" data-birth-date="{{s['birth_date']}}">
<h2 id="manage-title">Manage this study</h2>
% if other_records:
<div class="notice" role="note">The same Patient ID ({{s['patient_id']}}) names other patient records. If they are the
  same patient, merge them: the studies of one take the name and birth date of the other.
  <ul class="others">
%   for o in other_records:
    <li>{{person(o['name']) or '(no name)'}}, born {{dicom_date(o['birth_date']) or 'unknown'}}, {{plural(o['studies'], 'study', 'studies')}}:
      <button type="button" class="merge-into" data-into="{{o['study_uid']}}" data-label="{{person(o['name']) or '(no name)'}}">Use this record for this patient</button></li>
%   end
  </ul>
</div>
% end
<details class="fix">
  <summary>Fix the patient's details</summary>
  <form class="stack narrow" data-api action="/api/studies/{{s['study_uid']}}/patient">
    <label for="fix-family">Family name</label>
    <input id="fix-family" name="family" value="{{family}}" autocomplete="off">
    <label for="fix-given">Given name(s)</label>
    <input id="fix-given" name="given" value="{{given}}" autocomplete="off">
    <label for="fix-id">Patient ID</label>
    <input id="fix-id" name="patient_id" value="{{s['patient_id']}}" autocomplete="off" maxlength="64">
    <label for="fix-born">Birth date</label>
    % b = s['birth_date']
    <input id="fix-born" name="birth_date" type="date" value="{{'%s-%s-%s' % (b[:4], b[4:6], b[6:]) if len(b) == 8 and b.isdigit() else ''}}">
%   if patient_studies > 1:
    <label><input type="checkbox" name="scope" value="patient"> All {{patient_studies}} studies of this patient</label>
%   end
    <button type="submit">Save the corrected details</button>
    <output aria-live="polite"></output>
    <p class="hint">Every image of the study is rewritten with the new details (same UIDs); the old details are
    kept inside each file, the original files until the next backup has them, and the change is in the audit trail.</p>
  </form>
</details>
<details class="merge">
  <summary>Merge with another patient</summary>
  <div class="stack narrow">
    <label for="merge-search">Find the patient this one really is (name or Patient ID)</label>
    <input id="merge-search" type="search" autocomplete="off" placeholder="At least 2 characters">
    <ul id="merge-found" class="found" aria-live="polite"></ul>
    <p class="hint">The studies of {{person(s['patient_name']) or 'this patient'}} take the name, Patient ID and birth date of the patient you pick.</p>
  </div>
</details>
<p><button type="button" class="danger" data-delete="studies" data-uid="{{s['study_uid']}}">Delete this study…</button></p>
</section>
<dialog id="delete-dialog" aria-labelledby="delete-title">
  <form method="dialog" class="stack">
    <h2 id="delete-title">Delete</h2>
    <p id="delete-what"></p>
    <p class="hint" id="delete-keep">This cannot be undone here. The backup keeps its copy for its retention period.</p>
    <label for="delete-confirm" id="delete-ask"></label>
    <input id="delete-confirm" autocomplete="off" spellcheck="false">
    <output aria-live="assertive"></output>
    <div class="buttons"><button type="button" value="cancel" class="secondary">Cancel</button>
    <button type="submit" value="delete" class="danger" disabled>Delete</button></div>
  </form>
</dialog>
