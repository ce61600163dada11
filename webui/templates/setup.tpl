% rebase('base.tpl', title='First-run setup', user=None)
<section class="narrow">
<h1>Welcome to Lightbox</h1>
<p>No account exists yet. Create the first administrator. The setup code is printed in the
server's log (console or <code>journalctl -u lightbox</code>) when Lightbox starts.</p>
<p>On a Lightbox box made from the Raspberry Pi image, the code is also on its memory card: unplug
the box, put the card in any computer and open the file <code>lightbox-setup-code.txt</code> on
the drive named LIGHTBOX (then put the card back and plug the box in again; the code stays the
same). A screen plugged into the box shows it too.</p>
% if https['served']:
%   if not https['over_https']:
<p class="notice" id="plain-http"><strong>This page came over plain HTTP:</strong> the setup code and the
password you type here would cross the network unencrypted. Better, open it over HTTPS:
<a href="{{https['url']}}">{{https['url']}}</a>.</p>
%   end
%   include('https_check.tpl', https=https)
% end
% if message:
<p class="notice" role="alert">{{message}}</p>
% end
<form method="post" action="/setup" class="stack">
  <label for="code">Setup code</label>
  <input id="code" name="code" autocomplete="off" required autofocus>
  <label for="name">Administrator's user name</label>
  <input id="name" name="name" autocomplete="username" required value="{{name}}">
  <label for="password">Password (at least {{min_password}} characters)</label>
  <input id="password" name="password" type="password" autocomplete="new-password" minlength="{{min_password}}" required>
  <label for="password2">Password again</label>
  <input id="password2" name="password2" type="password" autocomplete="new-password" minlength="{{min_password}}" required>
  <button type="submit">Create administrator</button>
</form>
</section>
