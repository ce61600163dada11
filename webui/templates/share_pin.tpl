% rebase('base.tpl', title='Shared study')
<h1>Shared study</h1>
% if message:
<p class="error" role="alert">{{message}}</p>
% end
<form class="share-pin" method="post" action="/share/{{token}}">
  <p>The clinic gave you a PIN for this link, separately from the link itself.</p>
  <label>PIN <input name="pin" type="password" inputmode="numeric" autocomplete="off" required maxlength="64" autofocus></label>
  <button type="submit">Open</button>
</form>
