% # What to type into a modality, and the first contact as it happens (connect.js polls /api/connect).
<p>On the ultrasound or X-ray unit, open its DICOM settings (often <em>Network</em>, <em>PACS</em>,
<em>Storage destination</em> or <em>Archive</em>), add a destination and type:</p>
<dl class="connect-values" id="connect-values">
  <dt>AE title <span class="muted">(called AE, remote AE, PACS AE)</span></dt>
  <dd><code id="value-aet">{{values['aet']}}</code></dd>
  <dt>IP address <span class="muted">(host, server)</span></dt>
  <dd id="value-addresses">
% for i, address in enumerate(values['addresses']):
    {{!'<span class="muted">or</span> ' if i else ''}}<code>{{address}}</code>
% end
% if not values['addresses']:
    <span class="notice">this box has no network address right now: is the cable in?</span>
% end
  </dd>
% if values['host_name']:
  <dt>Host name <span class="muted">(if the unit takes names)</span></dt>
  <dd><code id="value-host">{{values['host_name']}}</code></dd>
% end
  <dt>Port</dt>
  <dd id="value-ports">
% for i, port in enumerate(values['ports']):
    {{!'<span class="muted">or</span> ' if i else ''}}<code>{{port}}</code>
% end
  </dd>
% if values.get('tls_port'):
  <dt>DICOM TLS port <span class="muted">(for a unit set up for TLS: give its certificate under Devices, DICOM nodes)</span></dt>
  <dd><code id="value-tls-port">{{values['tls_port']}}</code></dd>
% end
</dl>
<p class="help">The unit's own AE title (<em>calling AE</em>, <em>station name</em>) can stay as it is: Lightbox
learns it. Ask the clinic's router for a fixed address for this box (a DHCP reservation), so the address
above does not change. Then press the unit's <em>Test</em>, <em>Verify</em> or <em>Echo</em> button, or send a study.</p>
<div id="contact" class="contact" role="status" aria-live="polite" data-since="{{since}}" data-after="{{after}}">
  <p class="waiting"><span class="spinner" aria-hidden="true"></span> Waiting for the first image… (a unit's
  Test or Echo shows here too)</p>
</div>
