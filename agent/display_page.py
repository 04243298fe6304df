"""The chat page's look and small behaviours: CSS (desktop and a 390 px phone) and two scripts.

Kept out of ui.py so the adapter stays an adapter. The scripts only act on the page's own elements:
a click on a table's column header sorts by that column (a list longer than its page is ranked again by
find_customers, through ui.py; a shorter one by Gradio's own sort, through the header menu, so the values
sort as numbers), and a finished answer is scrolled into view even after a tool step
was expanded (Gradio's chat stops auto-scrolling once its height changes under the reader).
"""

from __future__ import annotations

CSS = """
#vd-title h1 { margin: 0; font-size: 1.35rem; }
#vd-title p { margin: 0; color: var(--body-text-color-subdued); }
#vd-status { min-height: 1.6em; font-size: 0.95rem; }
#vd-status p { margin: 0; }
#vd-status .vd-busy::before { content: ""; display: inline-block; width: 0.8em; height: 0.8em;
  margin-right: 0.45em; border: 2px solid var(--color-accent); border-right-color: transparent;
  border-radius: 50%; vertical-align: -0.1em; animation: vd-spin 0.8s linear infinite; }
@keyframes vd-spin { to { transform: rotate(360deg); } }
#vd-summary p, #vd-glossary p { margin: 0.1em 0; }
#vd-glossary, #vd-glossary p, #vd-glossary strong { font-size: 0.8rem !important; line-height: 1.35; color: var(--body-text-color-subdued); }
.vd-sortable th[role=columnheader] { cursor: pointer; }
.vd-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 12px 14px; }
.vd-card h3 { margin: 0 0 2px 0; }
.vd-card p { margin: 4px 0; }
.vd-figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 8px; margin: 8px 0; }
.vd-fig span { display: block; font-size: 0.8rem; color: var(--body-text-color-subdued); }
.vd-fig b { font-size: 1.1rem; }
.vd-lift { border-collapse: collapse; margin: 8px 0; font-size: 0.85rem; }
.vd-lift th, .vd-lift td { padding: 2px 8px; text-align: right; border-bottom: 1px solid var(--border-color-primary); }
.vd-caption { font-size: 0.8rem; color: var(--body-text-color-subdued); }
.vd-example { flex: 0 1 auto !important; min-width: 0 !important; }
.vd-lift, .vd-spread { margin: 0; }
.vd-spread-label { paint-order: stroke; stroke: var(--block-background-fill); stroke-width: 3px; }
.vd-lift-label { paint-order: stroke; stroke: var(--block-background-fill); stroke-width: 3px; }
.vd-lift-title { font-size: 0.9rem; color: var(--body-text-color-subdued); margin-bottom: 4px; }
.vd-lift figcaption, .vd-spread figcaption { font-size: 0.9rem; margin-top: 2px; }
#vd-page p { margin: 0; font-size: 0.9rem; }
@media (max-width: 700px) {
  #vd-title p { display: none; }
  #vd-chat { height: auto !important; max-height: 34vh !important; min-height: 96px !important; }
  #vd-ask { flex-wrap: nowrap !important; gap: 6px !important; }
  #vd-ask button { min-width: 0 !important; padding: 0 12px !important; flex: 0 0 auto !important; }
  #vd-new-chat { display: none !important; }  /* the chat's own clear button starts a new chat on a phone */
  #vd-input textarea { height: 2.6em !important; min-height: 0 !important; }
  #vd-examples { flex-wrap: nowrap !important; overflow-x: auto; padding-bottom: 4px; }
  #vd-examples .vd-example { flex: 0 0 auto !important; white-space: nowrap; }
  #vd-summary { font-size: 0.9rem; }
  #vd-chat .placeholder-content, #vd-chat .placeholder { min-height: 0 !important; padding: 4px !important; }
  #vd-side { order: 3; }
}
"""

# Sorting on a header click. A customer list longer than its page (the pager shows "Rows 1-20 of 931") is
# ranked again by the tool: the header's name goes to the hidden #vd-sort-request box and #vd-sort-go asks
# find_customers for every matching row ranked by that column (highest first; ui.sort_rows), so the sort
# never covers only the page on screen. A list that fits on screen sorts in the browser: Gradio 6 sorts from
# the header's menu; a click on the header opens it and picks the direction (largest first, then the other way).
HEAD = """
<script>
(() => {
  const pick = (label) => {
    const item = Array.from(document.querySelectorAll('[role=menu] [role=menuitem]'))
      .find(b => b.textContent.trim().startsWith(label));
    if (item) item.click();
  };
  const paged = (th) => {
    const pager = document.querySelector('#vd-page');
    return !!th.closest('#vd-table') && !!pager && pager.offsetParent !== null && /^Rows /.test(pager.innerText.trim());
  };
  const rankAll = (th) => {
    const box = document.querySelector('#vd-sort-request textarea, #vd-sort-request input');
    const go = document.querySelector('#vd-sort-go');
    if (!box || !go) return;
    box.value = (th.getAttribute('title') || th.innerText).trim() + '|' + Date.now();
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => go.click(), 0);
  };
  document.addEventListener('click', (event) => {
    const th = event.target.closest && event.target.closest('.vd-sortable th[role=columnheader]');
    if (!th || event.target.closest('button')) return;
    if (paged(th)) { rankAll(th); return; }
    const menu = th.querySelector('.cell-menu-button');
    if (!menu) return;
    const next = th.dataset.vdSort === 'desc' ? 'asc' : 'desc';
    document.querySelectorAll('.vd-sortable th[data-vd-sort]').forEach(h => { if (h !== th) delete h.dataset.vdSort; });
    th.dataset.vdSort = next;
    setTimeout(() => { menu.click(); setTimeout(() => pick(next === 'desc' ? 'Sort descending' : 'Sort ascending'), 30); }, 0);
  }, true);
})();
</script>
"""

# After an answer: bring the question just asked to the top of the chat, so the answer reads from its start.
SCROLL_JS = """
() => {
  const log = document.querySelector('#vd-chat [role=log]') || document.querySelector('#vd-chat .bubble-wrap');
  if (!log) return;
  const users = log.querySelectorAll('.message-row.user-row, .user-row, [data-testid=user]');
  const last = users[users.length - 1];
  if (last) { log.scrollTop += last.getBoundingClientRect().top - log.getBoundingClientRect().top - 8; } else { log.scrollTop = log.scrollHeight; }
}
"""
