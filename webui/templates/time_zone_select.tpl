% # The clinic's time zone: the saved one selected; with none saved, wizard.js selects the browser's.
<select id="time_zone" name="time_zone"{{!'' if selected else ' data-guess="1"'}}>
  <option value="">the system's time zone</option>
% for zone in time_zones:
  <option{{!' selected' if zone == selected else ''}}>{{zone}}</option>
% end
</select>
