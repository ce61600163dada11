% from appliance.web.display import today
% s = detail['study']
% animal = [('Species', s['species']), ('Breed', s['breed']), ('Owner', person(s['owner']))]
<section class="study-report" id="report" aria-labelledby="report-h" data-study-uid="{{s['study_uid']}}" data-user="{{user.name}}">
<h2 id="report-h">Report</h2>
<div class="rp-sheet">
<header class="rp-head">
% if get('clinic_name'):
  <p class="rp-clinic">{{clinic_name}}</p>
% end
  <p><b>{{person(s['patient_name']) or '(no name)'}}</b>{{(' · ID ' + s['patient_id']) if s['patient_id'] else ''}}
% for label, value in animal:
%   if value:
    · {{label}}: {{value}}
%   end
% end
  </p>
  <p>Study {{' · '.join(v for v in (dicom_date(s['study_date']), s['description'], ('Accession ' + s['accession']) if s['accession'] else '') if v) or '(undated)'}}</p>
  <p>Author: <span class="rp-author">{{user.name}}</span> · Date: <span class="rp-date">{{dicom_date(today().strftime('%Y%m%d'))}}</span></p>
</header>
<p class="rp-status" role="status">Loading the report…</p>
<div class="rp-text" hidden></div>
<label class="rp-editor" hidden>Report text <textarea id="report-text" rows="14" spellcheck="true"></textarea></label>
</div>
<p class="rp-buttons">
  <button type="button" class="rp-save" hidden>Save draft</button>
  <button type="button" class="rp-finalise" hidden>Finalise and sign</button>
  <button type="button" class="rp-amend" hidden>Amend</button>
  <button type="button" class="rp-cancel" hidden>Cancel</button>
  <button type="button" class="rp-discard link" hidden>Discard draft</button>
  <a class="button rp-print" href="/studies/{{s['study_uid']}}/report/print" target="_blank" rel="noopener" hidden>Print</a>
</p>
<p class="rp-error error" role="alert"></p>
<details class="rp-history" hidden><summary>History</summary><ol></ol></details>
</section>
<link rel="stylesheet" href="/static/report.css">
<script src="/static/report.js" defer></script>
