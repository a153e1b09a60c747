// Mkutano pages' only script, an enhancement: the pages work without it.
// After a refused form, move focus to the error summary (as the GOV.UK pattern does), so
// a screen reader reads it and a keyboard user starts there; the summary's links then
// move focus to their field.
document.addEventListener("DOMContentLoaded", function () {
  var summary = document.querySelector("[data-error-summary]");
  if (!summary) return;
  summary.focus();
  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (field) {
      event.preventDefault();
      field.focus();
      field.scrollIntoView({ block: "center" });
    }
  });
});
