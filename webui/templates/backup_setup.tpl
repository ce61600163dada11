% # The backup set-up form and the recovery sheet its answer fills (backup.js): the Backup page's and the wizard's.
<section aria-labelledby="setup-h" id="setup" class="screen-only">
<h2 id="setup-h">Set up the backup</h2>
<p>Lightbox encrypts everything on this box before it leaves: the bucket's provider never sees a
patient name or an image. Give it an S3-compatible bucket (AWS S3, Backblaze B2, Wasabi,
Cloudflare R2, MinIO...) and a key that may put, get and list in it.</p>
<form id="backup-setup" class="stack narrow" method="post" action="/api/backup/setup">
  <label for="endpoint">Endpoint URL (empty for AWS S3)</label>
  <input id="endpoint" name="endpoint" type="url" placeholder="https://s3.eu-central-003.backblazeb2.com" autocomplete="off">
  <label for="bucket">Bucket</label>
  <input id="bucket" name="bucket" required autocomplete="off">
  <label for="prefix">Folder in the bucket</label>
  <input id="prefix" name="prefix" value="lightbox" autocomplete="off">
  <label for="region">Region</label>
  <input id="region" name="region" value="us-east-1" autocomplete="off">
  <label for="access_key_id">Access key ID</label>
  <input id="access_key_id" name="access_key_id" autocomplete="off">
  <label for="secret_access_key">Secret access key</label>
  <input id="secret_access_key" name="secret_access_key" type="password" autocomplete="off">
  <label for="addressing">Addressing</label>
  <select id="addressing" name="addressing">
    <option value="path">path-style: endpoint/bucket (S3 clones, MinIO)</option>
    <option value="virtual">virtual-hosted: bucket.endpoint (AWS S3)</option>
  </select>
  <label for="passphrase">Passphrase (at least {{min_passphrase}} characters)</label>
  <input id="passphrase" name="passphrase" type="password" minlength="{{min_passphrase}}" autocomplete="new-password" required>
  <label for="passphrase2">Passphrase again</label>
  <input id="passphrase2" name="passphrase2" type="password" minlength="{{min_passphrase}}" autocomplete="new-password" required>
% include('backup_schedule.tpl', conf=conf, schedules=schedules)
  <p class="hint">The next page shows the recovery sheet once. Have a printer ready.</p>
  <button type="submit">Set up the backup</button><output></output>
</form>
</section>

<section id="sheet" aria-labelledby="sheet-h" hidden>
<h2 id="sheet-h">Lightbox backup recovery sheet</h2>
<p class="loss"><strong>{{loss_warning}}</strong></p>
<p class="screen-only">This sheet is shown <strong>only now</strong>. Print it (or store the key in a password
manager) and keep it away from the box.</p>
<dl class="sheet-facts">
  <dt>Backup</dt><dd id="sheet-target"></dd>
  <dt>Created</dt><dd id="sheet-created"></dd>
  <dt>Public key</dt><dd><code id="sheet-public"></code></dd>
</dl>
<p><strong>Recovery key</strong> (restores the backup without the passphrase):</p>
<p class="key"><code id="sheet-key"></code></p>
<img id="sheet-qr" alt="QR code of the recovery key" width="290" height="290">
<p>Restore on a new box: <code>lightbox restore --from-bucket BUCKET --endpoint URL --prefix PREFIX --to DIR
--recovery-key-file FILE</code> (or <code>--passphrase-file FILE</code>); the bucket's credentials are needed too.</p>
<div class="screen-only">
  <button type="button" id="print-sheet">Print the sheet</button>
  <form id="sheet-confirm" class="stack" data-api method="post" action="/api/backup/sheet-confirmed">
    <label class="tick"><input type="checkbox" name="stored" value="yes" required> I have printed or stored the sheet</label>
    <button type="submit">Done</button><output></output>
  </form>
</div>
</section>
