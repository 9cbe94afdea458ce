"use strict";
// Show why the last sign-in failed; the server redirects back with ?error=1 or ?error=throttled.
(function () {
  const error = new URLSearchParams(window.location.search).get("error");
  if (error === "throttled") {
    document.getElementById("login-throttled").hidden = false;
  } else if (error) {
    document.getElementById("login-error").hidden = false;
  }
})();
