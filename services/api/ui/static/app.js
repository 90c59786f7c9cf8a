// The dashboard's only script besides htmx: the form shows the chosen schedule kind's fields, and the header's
// dot says whether live updates are connected.
document.documentElement.classList.add("js");

document.addEventListener("change", (event) => {
  const form = event.target.closest("#job-form");
  if (!form) return;
  if (event.target.name === "job_type") form.dataset.kind = event.target.value;
  if (event.target.name === "action") form.dataset.action = event.target.value;
});

function liveStatus(on, text) {
  const dot = document.getElementById("live-status");
  if (!dot) return;
  dot.classList.toggle("on", on);
  dot.title = "live updates: " + text;
}
document.addEventListener("htmx:sseOpen", () => liveStatus(true, "connected"));
document.addEventListener("htmx:sseError", () => liveStatus(false, "reconnecting"));
