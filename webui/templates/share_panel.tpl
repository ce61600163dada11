<section class="sharing" aria-labelledby="share-h" data-study-uid="{{study_uid}}">
  <h2 id="share-h">Share with a colleague</h2>
  <form class="share-form" action="/api/studies/{{study_uid}}/shares" method="post">
    <label>Valid for <input name="days" type="number" min="1" step="1" required size="4"> days</label>
    <label>PIN <input name="pin" type="text" autocomplete="off" minlength="4" maxlength="64" placeholder="optional"></label>
    <label><input type="checkbox" name="deidentify" value="1"> De-identified</label>
    <button type="submit">Make a link</button>
  </form>
  <p class="share-made" hidden>Send this link; give the PIN separately (a call, a text message). It is shown only now:
    <input class="share-url" type="text" readonly aria-label="The new link"> <button type="button" class="share-copy">Copy</button></p>
  <p class="error share-error" role="alert" hidden></p>
  <table class="share-list" hidden>
    <thead><tr><th>Made by</th><th>Made</th><th>Expires</th><th>Opened</th><th>Terms</th><th>State</th><th></th></tr></thead>
    <tbody></tbody>
  </table>
  <p><a href="/api/studies/{{study_uid}}/anonymised.zip" download>Download anonymised (ZIP, PS3.15 basic profile)</a></p>
</section>
