% name = person(study['patient_name']) or '(no name)'
% here = '/studies/%s/print' % study['study_uid']
% series_label = ' '.join(str(v) for v in (series['modality'], '#%s' % series['series_number'] if series['series_number'] is not None else '', series['description']) if v)
% patient = [('Patient ID', study['patient_id']), ('Born', dicom_date(study['birth_date'])), ('Sex', study['sex']), ('Species', study['species']), ('Breed', study['breed']), ('Owner', person(study['owner']))]
% about = [('Date', dicom_date(study['study_date'])), ('Study', study['description']), ('Accession', study['accession']), ('Series', series_label)]
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{name}} · Print · {{clinic_name + " · " if get("clinic_name") else ""}}Lightbox</title>
<link rel="stylesheet" href="/static/print.css">
<script src="/static/lightbox.js" defer></script>
<script src="/static/print.js" defer></script>
</head>
<body class="per-{{per_page}}">
<nav class="pr-bar" aria-label="Print">
  <a href="/studies/{{study['study_uid']}}/view?series={{series['series_uid']}}">← Viewer</a>
  <form method="get" action="{{here}}">
    <label>Series <select name="series">
% for s in all_series:
      <option value="{{s['series_uid']}}"{{!' selected' if s['series_uid'] == series['series_uid'] else ''}}>{{s['modality']}} {{'#%s' % s['series_number'] if s['series_number'] is not None else ''}} {{s['description']}}</option>
% end
    </select></label>
    <label>Image <input name="image" type="number" min="1" max="{{total}}" value="{{image}}" placeholder="all" title="One image (its number in the series); empty: all images, at most 60"></label>
    <label>Per page <select name="per_page">
% for n in (1, 2, 4, 6):
      <option{{!' selected' if n == per_page else ''}}>{{n}}</option>
% end
    </select></label>
% if states:
    <label>Annotations <select name="state">
      <option value="none"{{!'' if state else ' selected'}}>None</option>
%   for st in states:
      <option value="{{st['sop_uid']}}"{{!' selected' if st['sop_uid'] == state else ''}}>{{st['label']}} · {{st['creator']}} · {{dicom_date(st['creation_date'])}}</option>
%   end
    </select></label>
% end
% if window:
    <input type="hidden" name="window" value="{{window}}">
% end
    <button type="submit">Show</button>
  </form>
  <button type="button" class="pr-print">Print</button>
% if bounded:
  <p class="pr-note">The first 60 of the series' {{total}} images.</p>
% end
</nav>
<main id="print" data-state="{{state}}" data-window="{{window}}">
% for page, sheet in enumerate(sheets, 1):
<section class="pr-sheet" aria-label="Page {{page}}">
  <header class="pr-head">
% if get("clinic_name"):
    <p class="pr-clinic">{{clinic_name}}</p>
% end
    <p class="pr-patient"><b>{{name}}</b>
% for label, value in patient:
%   if value:
      <span>{{label}}: {{value}}</span>
%   end
% end
    </p>
    <p class="pr-study">
% for label, value in about:
%   if value:
      <span>{{label}}: {{value}}</span>
%   end
% end
    </p>
  </header>
  <div class="pr-grid">
% for p in sheet:
    <figure class="pr-figure" data-sop-uid="{{p.sop_uid}}" data-frame="{{p.frame}}">
      <div class="pr-image">
        <img alt="Image {{p.position}}" data-src="/api/instances/{{p.sop_uid}}/frames/{{p.frame}}/rendered?quality=95{{!'&amp;width=%d&amp;height=%d' % (side, side) if max(p.rows, p.columns) > side else ''}}">
        <canvas width="{{p.columns or 1}}" height="{{p.rows or 1}}"></canvas>
      </div>
      <figcaption><span>Image {{p.position}} of {{total}}{{' · frame %d' % p.frame if p.frame > 1 else ''}}</span><ul class="pr-measurements"></ul></figcaption>
    </figure>
% end
  </div>
  <footer class="pr-foot">Page {{page}} of {{len(sheets)}}</footer>
</section>
% end
</main>
</body>
</html>
