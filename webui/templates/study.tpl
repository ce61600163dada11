% rebase('base.tpl', title='Study', scripts=['player.js', 'study.js', 'corrections.js', 'attach.js', 'share.js'], styles=['contents.css'])
% s = detail['study']
<nav class="crumbs" aria-label="Breadcrumb"><a href="/">← All studies</a></nav>
<h1>{{person(s['patient_name']) or '(no name)'}} <span class="sub">{{' · '.join(v for v in (s['description'], dicom_date(s['study_date'])) if v)}}</span></h1>
<div id="study" data-study-uid="{{s['study_uid']}}" data-images="{{s['num_instances']}}"></div>
% if s['identity_conflict']:
<p class="notice" role="note">Warning: another patient record has the same Patient ID with a different name or birth date.{{!' <a href="#manage">Resolve it</a>' if user.is_admin else ''}}</p>
% end
<section class="details" aria-label="Patient and study">
<dl>
  <dt>Patient ID</dt><dd>{{s['patient_id']}}</dd>
  <dt>Born</dt><dd class="date">{{dicom_date(s['birth_date'])}}</dd>
  <dt>Sex</dt><dd>{{s['sex']}}</dd>
% for label, value in (('Species', s['species']), ('Breed', s['breed']), ('Owner', person(s['owner']))):
%   if value:
  <dt>{{label}}</dt><dd>{{value}}</dd>
%   end
% end
</dl>
<dl>
  <dt>Study date</dt><dd class="date">{{dicom_date(s['study_date'])}} {{dicom_time(s['study_time'])}}</dd>
% for label, value in (('Accession', s['accession']), ('Study ID', s['study_id']), ('Modalities', ' '.join(s['modalities'])), ('Referring physician', person(s['referring_physician'])), ('Institution', s['institution'])):
%   if value:
  <dt>{{label}}</dt><dd>{{value}}</dd>
%   end
% end
  <dt>Images</dt><dd>{{plural(s['num_instances'], 'image')}} in {{plural(s['num_series'], 'series', 'series')}}</dd>
</dl>
<p><a class="button" href="/api/studies/{{s['study_uid']}}/archive.zip" download>Download study (ZIP with DICOMDIR)</a>
% if user.is_admin:
<a class="button" href="/schedule?study={{s['study_uid']}}#order">Schedule for this patient</a>
% end
% if get('ohif'):
<a class="button" id="open-ohif" href="{{ohif}}viewer?StudyInstanceUIDs={{s['study_uid']}}" target="_blank" rel="noopener">Open in OHIF</a>
% end
</p>
</section>
% include('study_report.tpl', detail=detail)
% if detail['orders']:
<section class="orders" aria-labelledby="orders-h">
<h2 id="orders-h">Order</h2>
<ul id="orders">
%   for o in detail['orders']:
  <li data-item="{{o['id']}}">{{o['requested_procedure_description'] or o['step_description'] or 'Procedure'}} ({{o['modality']}}{{(', station ' + o['station_aet']) if o['station_aet'] else ''}}), accession {{o['accession']}}, scheduled {{dicom_date(o['start_date'])}} {{dicom_time(o['start_time'])}}: <strong class="state">{{o['state'].capitalize()}}</strong>{{', images received' if o['images'] else ''}}</li>
%   end
</ul>
</section>
% end
% if detail['performed']:
% STEP = {'IN PROGRESS': 'In progress', 'COMPLETED': 'Completed', 'DISCONTINUED': 'Discontinued'}
<section class="performed" aria-labelledby="performed-h">
<h2 id="performed-h">Performed by the modality</h2>
<ul id="performed">
%   for p in detail['performed']:
  <li data-step="{{p['sop_uid']}}"{{!' class="discontinued"' if p['state'] == 'DISCONTINUED' else ''}}><strong class="state">{{STEP.get(p['state'], p['state'])}}</strong>{{(': ' + p['reason']) if p['reason'] else ''}}{{(' · ' + p['description']) if p['description'] else ''}} · {{p['station_aet'] or p['calling_ae']}}{{(' (' + p['modality'] + ')') if p['modality'] else ''}}, started {{dicom_date(p['start_date'])}} {{dicom_time(p['start_time'])}}{{(', ended ' + dicom_date(p['end_date']) + ' ' + dicom_time(p['end_time'])) if p['end_date'] else ''}}{{'' if p['worklist_item'] else ', unscheduled'}}
%     if p['series']:
    <span class="received">{{p['received']}} of {{plural(p['images'], 'image')}} received</span>
    <ul>
%       for se in p['series']:
      <li>{{se['description'] or 'Series'}}: {{se['received']}} of {{se['images']}} received</li>
%       end
    </ul>
%     end
  </li>
%   end
</ul>
</section>
% end
<div id="viewer" class="viewer" role="region" aria-label="Viewer"></div>
<section id="attach" class="attach" aria-labelledby="attach-h" data-study-uid="{{s['study_uid']}}">
<h2 id="attach-h">Attach files</h2>
<p>Drop files on this page, or choose them: a PDF (a referral letter), photos (JPEG, PNG, BMP), videos (MP4; AVI and others are converted). Each becomes a new series of this study.</p>
<p><label class="button">Choose files <input type="file" id="attach-files" multiple accept=".pdf,application/pdf,image/jpeg,image/png,image/bmp,video/*"></label>
<label class="button">Take a photo <input type="file" id="attach-camera" accept="image/*" capture="environment"></label></p>
<ul id="attach-progress" class="attach-progress" aria-live="polite"></ul>
</section>
<h2>Series</h2>
<ol class="series">
% for se in detail['series']:
%   front = se['front']
%   label = 'Series %s (%s)' % (se['series_number'] if se['series_number'] is not None else '', se['modality'])
<li class="series-item" data-series-uid="{{se['series_uid']}}" data-kind="{{se['kind']}}">
%   if front['kind'] == 'image':
  <a class="view" href="/studies/{{s['study_uid']}}/view?series={{se['series_uid']}}" data-series-uid="{{se['series_uid']}}" title="Open in the viewer">
    <img class="thumb" src="/api/series/{{se['series_uid']}}/thumbnail" alt="{{label}}: open in the viewer" width="128" height="128">
  </a>
%   elif front['kind'] == 'video':
  <button type="button" class="view" data-video-sop="{{front['sop_uid']}}" aria-controls="viewer" title="Play the video">
    <img class="thumb" src="/api/instances/{{front['sop_uid']}}/poster" alt="{{label}}: play the video" width="128" height="128">
  </button>
%   elif front['kind'] == 'pdf':
  <a class="view" href="/api/instances/{{front['sop_uid']}}/document" target="_blank" rel="noopener" title="Open the PDF">
    <img class="thumb" src="/static/icon-pdf.svg" alt="{{label}}: open the PDF" width="128" height="128">
  </a>
%   elif front['kind'] == 'report':
  <a class="view" href="/instances/{{front['sop_uid']}}/report" title="Read the report">
    <img class="thumb" src="/static/icon-report.svg" alt="{{label}}: read the report" width="128" height="128">
  </a>
%   else:
  <span class="view"><img class="thumb" src="/static/icon-{{front['kind'] if front['kind'] == 'document' else 'other'}}.svg" alt="{{label}}" width="128" height="128"></span>
%   end
  <div class="series-text">
    <h3>{{se['modality']}} {{'#%s' % se['series_number'] if se['series_number'] is not None else ''}} {{se['description']}}</h3>
    <p class="summary">{{se['summary']}}{{(' · ' + se['body_part']) if se['body_part'] else ''}}{{(' · ' + se['laterality']) if se['laterality'] else ''}}{{(' · ' + se['manufacturer'] + ' ' + se['model_name']) if se['manufacturer'] else ''}}</p>
    <p><a href="/api/series/{{se['series_uid']}}/archive.zip" download>Download series (ZIP)</a></p>
%   others = [i for i in se['instances'] if i['kind'] != 'image']
%   playback = next((i['video']['playback'] for i in others if i['kind'] == 'video' and i['video']['playback']), '')
%   if playback:
    <p class="notice" role="note">{{playback}}</p>
%   end
%   if others:
    <ul class="contents">
%     for i in others:
%       number = i['instance_number'] if i['instance_number'] is not None else '?'
%       if i['kind'] == 'video':
      <li data-sop-uid="{{i['sop_uid']}}">Video {{number}}: {{i['video']['length']}}
%         if not playback:
        <button type="button" class="link" data-video-sop="{{i['sop_uid']}}" aria-controls="viewer">Play</button> ·
        <a href="/api/instances/{{i['sop_uid']}}/video.mp4?download=1" download>Download MP4</a>
%         end
      </li>
%       elif i['kind'] in ('pdf', 'document'):
%         doc = i['document']
      <li data-sop-uid="{{i['sop_uid']}}">{{doc['title'] or doc['label']}}{{(' (%s)' % doc['label']) if doc['title'] else ''}}:
%         if not doc['readable']:
        cannot be read (it is in the series ZIP)
%         elif doc['inline']:
        <a href="/api/instances/{{i['sop_uid']}}/document" target="_blank" rel="noopener">Open</a> ·
        <a href="/api/instances/{{i['sop_uid']}}/document?download=1" download>Download</a>
%         else:
        <a href="/api/instances/{{i['sop_uid']}}/document?download=1" download>Download</a>
%         end
      </li>
%       elif i['kind'] == 'report':
      <li data-sop-uid="{{i['sop_uid']}}">{{i['description']}} {{number}}: <a href="/instances/{{i['sop_uid']}}/report">Read the report</a></li>
%       else:
      <li data-sop-uid="{{i['sop_uid']}}">{{i['description']}} {{number}}: nothing to show here (it is in the series ZIP)</li>
%       end
%     end
    </ul>
%   end
%   images = [i for i in se['instances'] if i['kind'] == 'image']
%   if images:
    <details><summary>Images as JPEG or PNG</summary>
      <ul class="images">
%     for i in images:
%       frames = i['number_of_frames'] or 1
        <li data-sop-uid="{{i['sop_uid']}}">Image {{i['instance_number'] if i['instance_number'] is not None else '?'}}{{' (%d frames)' % frames if frames > 1 else ''}}:
          <a href="/api/instances/{{i['sop_uid']}}/frames/1/rendered?format=jpeg&amp;download=1" download>JPEG</a>
          <a href="/api/instances/{{i['sop_uid']}}/frames/1/rendered?format=png&amp;download=1" download>PNG</a></li>
%     end
      </ul>
    </details>
%   end
  </div>
</li>
% end
</ol>
% include('share_panel.tpl', study_uid=s['study_uid'])
% if user.is_admin:
%   include('study_manage.tpl', detail=detail, other_records=other_records, patient_studies=patient_studies)
% end
