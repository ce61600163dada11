% rebase('base.tpl', title='Log in', user=None)
<section class="narrow">
<h1>Log in</h1>
% if message:
<p class="notice" role="alert">{{message}}</p>
% end
<form method="post" action="/login" class="stack">
  <input type="hidden" name="next" value="{{next}}">
  <label for="name">User name</label>
  <input id="name" name="name" autocomplete="username" required autofocus value="{{name}}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Log in</button>
</form>
</section>
