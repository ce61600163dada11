% rebase('base.tpl', title='OHIF viewer not installed')
<h1>The OHIF viewer is not installed</h1>
<p>This Lightbox can serve the OHIF web viewer here, at <code>/ohif/</code>, reading its studies over DICOMweb, but it is not installed.</p>
% if user.is_admin:
<p>To install OHIF {{version}} (a 50 MB download from the npm registry, 215 MB on disk), run this on the Lightbox as the user the service runs as, then reload this page:</p>
<pre>runuser -u lightbox -- /opt/lightbox/venv/bin/lightbox ohif install --data /var/lib/lightbox</pre>
<p>(That is the appliance; elsewhere, <code>lightbox ohif install</code> with the service's <code>--data</code> or <code>--config</code>.)</p>
<p>Without internet on the box: download the tarball that <code>lightbox ohif install --help</code> names elsewhere, copy it over and use <code>lightbox ohif install --from FILE.tgz</code>. The file is checked against the pinned SHA-512 either way.</p>
% else:
<p>Ask an admin to install it (<code>lightbox ohif install</code>).</p>
% end
<p><a href="/">Back to the studies</a></p>
