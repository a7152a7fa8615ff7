// steplab: when the server refuses a callback because the session ended (idle or too old, logged out
// elsewhere, user deactivated: 401) or a new password is due (403), go to the login / password page
// instead of leaving a page that silently stops answering.
(function () {
  "use strict";
  if (window.__steplabAuthWrapped || typeof window.fetch !== "function") {
    return;
  }
  window.__steplabAuthWrapped = true;
  var original = window.fetch;
  window.fetch = function (input, init) {
    var url = typeof input === "string" ? input : (input && input.url) || "";
    return original.apply(this, arguments).then(function (response) {
      if (url.indexOf("/_dash-") !== -1) {
        var here = window.location.pathname + window.location.search;
        if (response.status === 401) {
          window.location.assign("/login?next=" + encodeURIComponent(here));
        } else if (response.status === 403) {
          window.location.assign("/account/password?next=" + encodeURIComponent(here));
        }
      }
      return response;
    });
  };
})();
