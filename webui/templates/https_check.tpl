% # The certificate's fingerprint and how to check it (setup page, Admin page, wizard).
<p class="fingerprint">The certificate's SHA-256 fingerprint:<br><code id="fingerprint">{{https['fingerprint']}}</code></p>
% if https['made_here']:
<p class="help">This box made its own certificate, so a browser warns that it does not know it. Before
going on, check that the SHA-256 fingerprint the browser shows for it (Chrome, Edge: the “Not secure” sign
left of the address, then the certificate; Firefox: Advanced, View Certificate) is the one on the box's
screen (or in <code>journalctl -u lightbox</code>). This page shows it too, but whoever could forge a
certificate could forge this page: the box's own screen is the one to trust.</p>
% end
