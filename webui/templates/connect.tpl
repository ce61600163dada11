% rebase('base.tpl', title='Connect a modality', scripts=['connect.js'])
<h1>Connect a modality</h1>
% include('connect_values.tpl')
<p><a href="/admin/devices">All devices</a> · <a href="/admin">Admin</a></p>
