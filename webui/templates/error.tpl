% rebase('base.tpl', title='Error %d' % status)
<h1>Error {{status}}</h1>
<p>{{message}}</p>
<p><a href="/">Back to the studies</a></p>
