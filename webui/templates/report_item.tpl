% if item.value_type == 'CONTAINER':
<section id="item-{{item.position}}">
%   if item.name:
{{!'<h%d>' % min(depth, 6)}}{{item.name}}{{!'</h%d>' % min(depth, 6)}}
%   end
%   if item.relationship:
<p class="sr-rel">{{item.relationship}}</p>
%   end
%   for child in item.children:
%     include('report_item.tpl', item=child, depth=depth + 1)
%   end
</section>
% else:
<div class="sr-item" id="item-{{item.position}}">
%   if item.relationship:
<span class="sr-rel">{{item.relationship}}:</span>
%   end
%   if item.name:
<span class="sr-name">{{item.name}}:</span>
%   end
%   if item.reference:
<a href="#item-{{item.reference}}">item {{item.reference}}</a>
%   else:
<span class="sr-value">{{readable.value(item)}}</span>
%     if item.code:
<span class="sr-code">({{item.code}})</span>
%     end
%   end
%   if item.observed:
<span class="sr-observed">(observed {{readable.datetime(item.observed)}})</span>
%   end
%   if item.children:
<div class="sr-children">
%     for child in item.children:
%       include('report_item.tpl', item=child, depth=depth)
%     end
</div>
%   end
</div>
% end
