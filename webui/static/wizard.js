// The time zone choice: with none saved yet, the browser's own zone is selected (when this box knows it).
"use strict";
(() => {
  const select = document.querySelector("select[name=time_zone][data-guess]");
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (select && zone && [...select.options].some((option) => option.value === zone)) select.value = zone;
})();
