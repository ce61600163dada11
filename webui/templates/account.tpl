% rebase('base.tpl', title='Your account')
<section class="narrow">
<h1>Your account</h1>
<dl><dt>User name</dt><dd>{{user.name}}</dd><dt>Role</dt><dd>{{user.role}}</dd></dl>
<h2>Change your password</h2>
<form class="stack" data-api data-done="Your password is changed." method="post" action="/api/me/password">
  <label for="current">Current password</label>
  <input id="current" name="current" type="password" autocomplete="current-password" required>
  <label for="new-password">New password (at least {{min_password}} characters)</label>
  <input id="new-password" name="password" type="password" autocomplete="new-password" minlength="{{min_password}}" required>
  <button type="submit">Change password</button><output></output>
</form>
<p>Changing it logs you out everywhere else.</p>
</section>
