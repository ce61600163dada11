% rebase('base.tpl', title='Study', scripts=['viewer.js', 'study.js', 'corrections.js'], styles=['viewer.css'])
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
<p><a class="button" href="/api/studies/{{s['study_uid']}}/archive.zip" download>Download study (ZIP with DICOMDIR)</a></p>
</section>
<div id="viewer" class="viewer" role="region" aria-label="Viewer"></div>
<h2>Series</h2>
<ol class="series">
% for se in detail['series']:
<li class="series-item" data-series-uid="{{se['series_uid']}}">
  <button type="button" class="view" data-series-uid="{{se['series_uid']}}" aria-controls="viewer" title="Open in the viewer">
    <img class="thumb" src="/api/series/{{se['series_uid']}}/thumbnail" alt="Series {{se['series_number'] if se['series_number'] is not None else ''}} ({{se['modality']}}): open in the viewer" width="128" height="128">
  </button>
  <div class="series-text">
    <h3>{{se['modality']}} {{'#%s' % se['series_number'] if se['series_number'] is not None else ''}} {{se['description']}}</h3>
    <p>{{plural(se['num_instances'], 'image')}}{{(' · ' + se['body_part']) if se['body_part'] else ''}}{{(' · ' + se['laterality']) if se['laterality'] else ''}}{{(' · ' + se['manufacturer'] + ' ' + se['model_name']) if se['manufacturer'] else ''}}</p>
    <p><a href="/api/series/{{se['series_uid']}}/archive.zip" download>Download series (ZIP)</a></p>
    <details><summary>Images as JPEG or PNG</summary>
      <ul class="images">
%     for i in se['instances']:
%       frames = i['number_of_frames'] or 1
        <li data-sop-uid="{{i['sop_uid']}}">Image {{i['instance_number'] if i['instance_number'] is not None else '?'}}{{' (%d frames)' % frames if frames > 1 else ''}}:
          <a href="/api/instances/{{i['sop_uid']}}/frames/1/rendered?format=jpeg&amp;download=1" download>JPEG</a>
          <a href="/api/instances/{{i['sop_uid']}}/frames/1/rendered?format=png&amp;download=1" download>PNG</a></li>
%     end
      </ul>
    </details>
  </div>
</li>
% end
</ol>
% if user.is_admin:
%   include('study_manage.tpl', detail=detail, others=others, patient_studies=patient_studies)
% end
