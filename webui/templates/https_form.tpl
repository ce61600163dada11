% # The admin's HTTPS choices (Admin page and the wizard's step); appliance/web/https.py keeps them.
% need_https = not https['over_https'] and not https['only']
<form class="stack" data-api method="post" action="{{action}}" id="https-form">
  <label class="tick"><input type="checkbox" name="https_only" id="https_only" value="on"{{!' checked' if https['only'] else ''}}{{!' disabled' if need_https else ''}}>
  HTTPS only: a browser that opens an http:// address of this box is sent to https:// (all but
  <code>/healthz</code>, the box's own health check)</label>
% if need_https:
  <p class="help" id="https-only-how">To turn this on, open this page over HTTPS first,
  <a href="{{https['url']}}">{{https['url']}}</a>: that shows that your browser gets there.</p>
% end
  <label class="tick"><input type="checkbox" name="certificate_trusted" id="certificate_trusted" value="on"{{!' checked' if https['trusted'] else ''}}>
  Our browsers trust this certificate (the clinic's own, from a CA they know, or installed as trusted on
  each of them): tell them to come over HTTPS only, for a year (HSTS)</label>
  <p class="help">Leave it unticked with a certificate this box made: a browser told to use HTTPS only for
  a site whose certificate it does not trust shows its warning with no way past it.</p>
  <button type="submit">{{button}}</button><output></output>
</form>
