% name = person(study['patient_name']) or '(no name)'
% patient = [('Patient ID', study['patient_id']), ('Born', dicom_date(study['birth_date'])), ('Sex', study['sex']), ('Species', study['species']), ('Breed', study['breed']), ('Owner', person(study['owner']))]
% about = [('Date', dicom_date(study['study_date'])), ('Study', study['description']), ('Accession', study['accession'])]
% signed = 'Signed' if version.final else 'Draft saved'
% status = ('Final report, amended' if version.amends else 'Final report') if version.final else ('Draft amendment, not signed' if version.amends else 'Draft, not signed')
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{name}} · Report · {{clinic_name + " · " if get("clinic_name") else ""}}Lightbox</title>
<link rel="stylesheet" href="/static/report.css">
<script src="/static/lightbox.js" defer></script>
<script src="/static/report.js" defer></script>
</head>
<body class="rp-print-page">
<nav class="rp-bar" aria-label="Print">
  <a href="/studies/{{study['study_uid']}}#report">← Study</a>
  <button type="button" class="rp-print-now">Print</button>
</nav>
<main class="rp-page">
  <header class="rp-head">
% if get("clinic_name"):
    <p class="rp-clinic">{{clinic_name}}</p>
% end
    <h1>Diagnostic imaging report</h1>
    <p><b>{{name}}</b>
% for label, value in patient:
%   if value:
      <span>· {{label}}: {{value}}</span>
%   end
% end
    </p>
    <p>{{' · '.join('%s: %s' % (label, value) for label, value in about if value)}}</p>
  </header>
  <p class="rp-status" data-status="{{'final' if version.final else 'draft'}}">{{status}} · version {{version.instance_number}}</p>
% if version.sop_uid != current.sop_uid:
  <p class="rp-note">This is not the current version of the report (version {{current.instance_number}} is).</p>
% end
% if version.amends:
%   earlier = next((v for v in versions if v.sop_uid == version.amends), None)
  <p class="rp-note">Amended: this report replaces the final report{{(' of ' + dicom_date(earlier.date) + ' signed by ' + person(earlier.author)) if earlier else ''}}.</p>
% end
  <div class="rp-text">{{version.text}}</div>
  <footer class="rp-foot">
    <p>{{signed}} by {{person(version.author)}} on {{dicom_date(version.date)}} {{dicom_time(version.time)}}{{(' (UTC%s:%s)' % (version.offset[:3], version.offset[3:])) if len(version.offset) == 5 else ''}}</p>
    <p class="rp-printed">Printed by {{printed_by}}</p>
  </footer>
</main>
</body>
</html>
