% # A study named by an event, a change or a job: its patient, description and date, linked.
% if label:
<a class="study-link" href="/studies/{{uid}}">{{person(label['patient_name']) or '(no name)'}}</a>
<span class="study-about muted">{{label['description']}}{{' · ' if label['description'] and label['study_date'] else ''}}<span class="date">{{dicom_date(label['study_date'])}}</span></span>
% else:
<span class="muted" title="{{uid}}">a study no longer in the archive</span>
% end
