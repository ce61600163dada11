% rebase('base.tpl', title='Shared study', styles=['contents.css'])
% s = detail['study']
% from datetime import datetime, timezone
<h1>Shared study</h1>
<section class="details" aria-label="Study">
% if link['deidentify']:
  <p class="notice" role="note">De-identified: names, IDs and the clinic's text are removed, dates are shifted.</p>
% else:
  <p><b>{{person(s['patient_name']) or '(no name)'}}</b>{{' · ' + s['patient_id'] if s['patient_id'] else ''}}</p>
%   if s['description']:
  <p>{{s['description']}}</p>
%   end
% end
  <p>{{dicom_date(s['study_date'])}} · {{' '.join(s['modalities'])}} · {{plural(s['num_instances'], 'instance')}}</p>
  <p class="share-expiry">This link is valid until {{datetime.fromtimestamp(link['expires_at'], timezone.utc).strftime('%d %b %Y %H:%M UTC')}}. It shows this study only, read-only.</p>
% if burned_in:
  <p class="warning" role="alert">Some series may contain burned-in patient data: text written into the images themselves, which de-identification cannot remove.</p>
% end
  <p><a class="button" href="/share/{{token}}/view">Open the viewer</a>
     <a class="button" href="/share/{{token}}/study.zip" download>Download the study ({{'de-identified ' if link['deidentify'] else ''}}ZIP)</a></p>
</section>
<h2>Series</h2>
<ol class="series">
% for se in detail['series']:
%   front = se['front']
%   label = '%s %s' % (se['modality'], '#%s' % se['series_number'] if se['series_number'] is not None else '')
<li class="series-item" data-series-uid="{{se['series_uid']}}">
%   if front['kind'] == 'image':
  <a class="view" href="/share/{{token}}/view?series={{se['series_uid']}}" title="Open in the viewer">
    <img class="thumb" src="/api/series/{{se['series_uid']}}/thumbnail" alt="{{label}}: open in the viewer" width="128" height="128">
  </a>
%   elif front['kind'] == 'video':
  <a class="view" href="/api/instances/{{front['sop_uid']}}/video.mp4" title="Play the video">
    <img class="thumb" src="/api/instances/{{front['sop_uid']}}/poster" alt="{{label}}: play the video" width="128" height="128">
  </a>
%   elif front['kind'] == 'pdf' and not link['deidentify']:
  <a class="view" href="/api/instances/{{front['sop_uid']}}/document" target="_blank" rel="noopener" title="Open the PDF">
    <img class="thumb" src="/static/icon-pdf.svg" alt="{{label}}: open the PDF" width="128" height="128">
  </a>
%   elif front['kind'] == 'report' and not link['deidentify']:
  <a class="view" href="/share/{{token}}/report/{{front['sop_uid']}}" title="Read the report">
    <img class="thumb" src="/static/icon-report.svg" alt="{{label}}: read the report" width="128" height="128">
  </a>
%   else:
  <span class="view"><img class="thumb" src="/static/icon-other.svg" alt="{{label}}" width="128" height="128"></span>
%   end
  <div class="series-text">
    <h3>{{label}} {{se['description']}}</h3>
    <p class="summary">{{se['summary']}}</p>
%   if se['series_uid'] in burned_in:
    <p class="warning">May contain burned-in patient data.</p>
%   end
  </div>
</li>
% end
</ol>
