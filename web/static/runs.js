// The runs table: a "select all" box and a live count of the runs chosen for comparison.
// The table works without this: the checkboxes submit the compare form on their own.
const form = document.getElementById("compare-form");
const all = document.getElementById("select-all");
const note = document.getElementById("selection-note");
const button = document.getElementById("compare-button");

function boxes() {
  return [...document.querySelectorAll('input[type=checkbox][name=runs][form="compare-form"]')];
}

function update() {
  const chosen = boxes().filter((b) => b.checked).length;
  if (note) note.textContent = chosen ? `${chosen} selected` : "";
  if (button) button.disabled = chosen > 0 && chosen < 2;
  if (all) {
    all.checked = chosen > 0 && chosen === boxes().length;
    all.indeterminate = chosen > 0 && chosen < boxes().length;
  }
}

if (form) {
  if (all) {
    all.hidden = false;
    all.addEventListener("change", () => {
      for (const b of boxes()) b.checked = all.checked;
      update();
    });
  }
  document.addEventListener("change", (e) => {
    if (e.target.matches && e.target.matches('input[name=runs]')) update();
  });
  update();
}
