  <label for="backup_schedule">Schedule</label>
  <select id="backup_schedule" name="backup_schedule">
% for choice, label in (('nightly', 'nightly, at the time below'), ('continuous', 'continuous, after the quiet time below'), ('manual', 'manual, only when asked')):
%   if choice in schedules:
    <option value="{{choice}}"{{!' selected' if conf['backup_schedule'] == choice else ''}}>{{label}}</option>
%   end
% end
  </select>
  <label for="backup_time">Nightly at (HH:MM, the clinic's time)</label>
  <input id="backup_time" name="backup_time" value="{{conf['backup_time']}}" pattern="([01][0-9]|2[0-3]):[0-5][0-9]" required>
  <label for="backup_delay">Continuous: quiet for (seconds)</label>
  <input id="backup_delay" name="backup_delay" type="number" min="0" value="{{conf['backup_delay']}}" required>
