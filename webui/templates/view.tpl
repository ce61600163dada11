% s = detail['study']
% name = person(s['patient_name']) or '(no name)'
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{name}} · Viewer · {{clinic_name + " · " if get("clinic_name") else ""}}Lightbox</title>
% for url in preloads:
<link rel="preload" href="{{url}}" as="fetch" crossorigin>
% end
<link rel="stylesheet" href="/static/viewer.css">
<script src="/static/lightbox.js" defer></script>
<script src="/static/annotate.js" defer></script>
<script src="/static/states.js" defer></script>
<script src="/static/viewer.js" defer></script>
<script src="/static/workspace.js" defer></script>
</head>
<body class="ws-page">
<div id="workspace" class="ws" data-study-uid="{{s['study_uid']}}">
<input type="hidden" name="csrf" value="{{csrf}}">
<header class="ws-bar">
  <a class="ws-back" href="{{get('back_url', '/studies/' + s['study_uid'])}}" title="Back to the study page">← Study</a>
  <h1 class="ws-title"><b>{{name}}</b> <span>{{' · '.join(v for v in (s['patient_id'], s['description'], dicom_date(s['study_date'])) if v)}}</span></h1>
  <div class="ws-actions" role="toolbar" aria-label="Layout">
    <button type="button" data-layout="1" title="One viewport (1)">1×1</button>
    <button type="button" data-layout="2" title="Two side by side (2)">1×2</button>
    <button type="button" data-layout="4" title="Four (4)">2×2</button>
    <button type="button" class="ws-link" aria-pressed="true" title="Scroll series of the same frame of reference together (L)">Link</button>
    <button type="button" class="ws-sync" aria-pressed="false" title="The same window/level in every viewport (S)">Sync W/L</button>
    <button type="button" class="ws-priors-toggle" aria-controls="priors" aria-expanded="false" title="The patient's other studies"{{!' hidden' if get('shared') else ''}}>Priors ({{len(priors)}})</button>
    <a class="ws-print"{{!' hidden' if get('shared') else ''}} href="/studies/{{s['study_uid']}}/print{{'?series=' + print_series if print_series else ''}}" target="_blank" title="Print the active viewport's image, or its series (a new tab)">Print</a>
    <button type="button" class="ws-full" title="Full screen (F, or double-click)">Full screen</button>
    <button type="button" class="ws-help-toggle" aria-controls="help" title="Keyboard shortcuts (?)">?</button>
  </div>
</header>
<div class="ws-main">
  <nav class="ws-strip" aria-label="Series">
    <div class="ws-group" data-study-uid="{{s['study_uid']}}">
      <h2>{{dicom_date(s['study_date']) or 'This study'}}</h2>
% for se in detail['series']:
%   if se['front']['kind'] == 'image':
      <button type="button" class="ws-series" data-series-uid="{{se['series_uid']}}" draggable="true"
              title="{{se['modality']}} #{{se['series_number'] if se['series_number'] is not None else ''}} {{se['description']}}">
        <img src="/api/series/{{se['series_uid']}}/thumbnail" alt="" width="96" height="96" loading="lazy">
        <span>{{se['modality']}} {{'#%s' % se['series_number'] if se['series_number'] is not None else ''}} {{se['description']}}</span>
      </button>
%   end
% end
    </div>
  </nav>
  <div id="viewer" class="ws-grid" data-layout="1" role="region" aria-label="Viewer"></div>
  <aside id="priors" class="ws-priors" hidden aria-label="Other studies of this patient">
    <h2>Other studies of {{name}}</h2>
% if priors:
    <ul>
%   for p in priors:
      <li><button type="button" data-study-uid="{{p['study_uid']}}" title="Open beside the current study">
        <b>{{dicom_date(p['study_date']) or 'No date'}}</b> {{p['description']}}
        <span>{{' '.join(p['modalities'])}} · {{plural(p['num_instances'], 'image')}}</span></button></li>
%   end
    </ul>
% else:
    <p>No other studies of this patient in the archive.</p>
% end
  </aside>
</div>
<div id="help" class="ws-help" role="dialog" aria-label="Keyboard shortcuts" hidden>
  <h2>Keyboard</h2>
  <dl>
    <dt>↑ ↓ ← →</dt><dd>previous / next image</dd>
    <dt>Page Up / Page Down</dt><dd>10 images back / on</dd>
    <dt>Home / End</dt><dd>first / last image</dd>
    <dt>Space</dt><dd>play / pause cine</dd>
    <dt>W · P · Z · M</dt><dd>tool: window/level · pan · zoom · measure a length</dd>
    <dt>A · E · T</dt><dd>tool: angle · ellipse ROI · text (more in the tools list)</dd>
    <dt>Delete · Esc</dt><dd>delete the selected annotation · drop the one being drawn</dd>
    <dt>I · O · H · R</dt><dd>invert · rotate · flip · reset</dd>
    <dt>1 · 2 · 4</dt><dd>layout 1×1 · 1×2 · 2×2</dd>
    <dt>L · S</dt><dd>link scrolling · synchronise W/L</dd>
    <dt>F (or double-click)</dt><dd>full screen</dd>
    <dt>?</dt><dd>this help (Esc closes it)</dd>
  </dl>
  <button type="button" class="ws-help-close">Close</button>
</div>
</div>
</body>
</html>
