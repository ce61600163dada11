% # Add a node (node None) or change one: the same fields for both.
% ops = node['allowed'] if node else list(operations)
<form class="grid-form" data-api method="post" action="{{action}}">
% if node is None:
  <label for="{{prefix}}-aet">AE title</label><input id="{{prefix}}-aet" name="aet" maxlength="16" required autocomplete="off" placeholder="e.g. WORKSTATION1">
% end
  <label for="{{prefix}}-name">Name (for people)</label><input id="{{prefix}}-name" name="name" value="{{node['name'] if node else ''}}" autocomplete="off">
  <label for="{{prefix}}-host">Host (IP address or name)</label><input id="{{prefix}}-host" name="host" value="{{node['host'] if node else ''}}" required autocomplete="off">
  <label for="{{prefix}}-port">DICOM port</label><input id="{{prefix}}-port" name="port" type="number" min="1" max="65535" value="{{node['port'] if node else ''}}" required placeholder="e.g. 104">
  <fieldset class="choices"><legend>It may</legend>
    <input type="hidden" name="allowed" value="">
% for op, words in operations.items():
    <label><input type="checkbox" name="allowed" value="{{op}}"{{!' checked' if op in ops else ''}}> {{words}}</label>
% end
  </fieldset>
  <input type="hidden" name="tls" value="no">
  <label class="check"><input type="checkbox" name="tls" value="yes"{{!' checked' if node and node['tls'] else ''}}> Send to it over DICOM TLS</label>
  <label for="{{prefix}}-trust">Its TLS certificate, or its CA's (PEM): checked when Lightbox sends to it over TLS and when it connects to Lightbox's TLS port</label>
  <textarea id="{{prefix}}-trust" name="tls_trust" rows="3" spellcheck="false" placeholder="-----BEGIN CERTIFICATE-----">{{node['tls_trust'] if node else ''}}</textarea>
  <button type="submit">{{button}}</button><output></output>
</form>
