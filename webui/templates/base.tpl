<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · {{clinic_name + " · " if get("clinic_name") else ""}}Lightbox</title>
<link rel="stylesheet" href="/static/lightbox.css">
% for sheet in get('styles', []):
<link rel="stylesheet" href="/static/{{sheet}}">
% end
<script src="/static/lightbox.js" defer></script>
% for script in get('scripts', []):
<script src="/static/{{script}}" defer></script>
% end
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/">Lightbox</a>
% if get('clinic_name'):
  <span class="clinic">{{clinic_name}}</span>
% end
% if get('user'):
  <nav aria-label="Main">
    <a href="/"{{!' aria-current="page"' if get('section') == 'studies' else ''}}>Studies</a>
    <a href="/schedule"{{!' aria-current="page"' if get('section') == 'schedule' else ''}}>Schedule</a>
%   if user.is_admin:
    <a href="/admin"{{!' aria-current="page"' if get('section') == 'admin' else ''}}>Admin</a>
    <a href="/admin/backup"{{!' aria-current="page"' if get('section') == 'backup' else ''}}>Backup</a>
    <a href="/admin/audit"{{!' aria-current="page"' if get('section') == 'audit' else ''}}>Audit</a>
    <a href="/admin/devices"{{!' aria-current="page"' if get('section') == 'devices' else ''}}>Devices</a>
%   end
  </nav>
  <form class="logout" method="post" action="/logout">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <a class="who" href="/account"{{!' aria-current="page"' if get('section') == 'account' else ''}}>{{user.name}} ({{user.role}})</a>
    <button type="submit">Log out</button>
  </form>
% end
</header>
<main id="main" tabindex="-1">
{{!base}}
</main>
<footer>Lightbox {{version}}</footer>
</body>
</html>
