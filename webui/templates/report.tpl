% rebase('base.tpl', title='Report', styles=['contents.css'])
<nav class="crumbs" aria-label="Breadcrumb"><a href="/">← All studies</a>
% if study:
 · <a href="/studies/{{study['uid']}}">This study</a>
% end
</nav>
<h1>{{report.title or 'Structured report'}} <span class="sub">{{report.document_type}}{{(' · ' + person(patient['name'])) if patient.get('name') else ''}}{{(' · ' + dicom_date(study['date'])) if study.get('date') else ''}}</span></h1>
<section class="details" aria-label="About this report">
<dl>
% if patient:
  <dt>Patient</dt><dd>{{person(patient['name'])}} ({{patient['id']}})</dd>
% end
  <dt>Content date</dt><dd>{{readable.datetime(report.content_date + report.content_time)}}</dd>
% if report.root.observed:
  <dt>Observed</dt><dd>{{readable.datetime(report.root.observed)}}</dd>
% end
  <dt>Completion</dt><dd>{{report.completion or 'not stated'}}{{(' (' + report.completion_description + ')') if report.completion_description else ''}}</dd>
  <dt>Verification</dt><dd>{{report.verification or 'not stated'}}</dd>
% for observer in report.verifying_observers:
  <dt>Verified by</dt><dd>{{person(observer.name)}}{{(', ' + observer.organization) if observer.organization else ''}}{{(', ' + readable.datetime(observer.when)) if observer.when else ''}}</dd>
% end
% if report.preliminary:
  <dt>Preliminary</dt><dd>{{report.preliminary}}</dd>
% end
</dl>
<p><a href="/api/instances/{{sop_uid}}/report">This report as JSON</a></p>
</section>
% if report.truncated:
<p class="notice" role="note">This report is too large to show whole here; download the study or series to read all of it.</p>
% end
<article class="report" aria-label="Report content">
% for item in report.root.children:  # the root's name is the page's title
%   include('report_item.tpl', item=item, depth=2)
% end
</article>
