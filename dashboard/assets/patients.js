// The patient list is one block of HTML (fast with a clinic's 500 patients); its links move inside the app
// the way dcc.Link does (history.pushState + the event dcc.Location listens to), without reloading the page.
document.addEventListener("click", function (ev) {
  var a = ev.target && ev.target.closest ? ev.target.closest("a.patient-link") : null;
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) {
    return;
  }
  ev.preventDefault();
  window.history.pushState({}, "", a.getAttribute("href"));
  window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
  window.scrollTo(0, 0);
});
