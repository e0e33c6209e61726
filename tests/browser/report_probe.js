// Injected at the end of a copy of the Snakemake report by tests/test_workflow.py: it clicks through
// the report like a reader (Results -> each category -> each subcategory -> each result's eye
// button) and writes what the page showed, as JSON, into a <pre> element with id medssl-probe, for
// `chromium --headless --dump-dom` to return.
(async () => {
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  const app = () => document.querySelector('#app');
  const byText = text => [...app().querySelectorAll('a')].find(a => a.textContent.trim() === text);
  const home = async () => { const a = byText('Results'); if (a) { a.click(); await sleep(200); } };
  const content = () => app().querySelector(':scope > div > div.grow') || app();
  const shown = {};
  const report = (extra) => {
    const pre = document.createElement('pre');
    pre.id = 'medssl-probe';
    pre.textContent = JSON.stringify({shown, ...extra});
    document.body.appendChild(pre);
  };
  try {
    for (let i = 0; i < 50 && !byText('Figures'); i++) await sleep(100);
    // the start page draws the rule graph with vega-embed
    const ruleGraph = !!app().querySelector('.vega-embed canvas, .vega-embed svg');
    const categories = ['Configuration', 'Figures', 'Tables'];
    for (const category of categories) {
      await home();
      byText(category).click(); await sleep(300);
      let subcategories = [null];
      if (!app().querySelector('a[iconname="eye"]')) {  // several subcategories: a list of links first
        const crumbs = new Set(['', 'Results', category, 'Save as SVG', 'Save as PNG', 'View Source', 'Open in Vega Editor']);
        subcategories = [...app().querySelectorAll('nav a')].map(a => a.textContent.trim()).filter(t => !crumbs.has(t));
      }
      for (const sub of subcategories) {
        if (sub !== null) { await home(); byText(category).click(); await sleep(200); byText(sub).click(); await sleep(300); }
        const rows = [...app().querySelectorAll('tbody tr')].map(tr => tr.querySelector('td').textContent.trim());
        for (let r = 0; r < rows.length; r++) {
          const eye = app().querySelectorAll('tbody tr')[r].querySelector('a[iconname="eye"]');
          const entry = {category, subcategory: sub, href: eye ? (eye.getAttribute('href') || '').slice(0, 30) : null};
          if (eye && eye.getAttribute('href').startsWith('data:')) {  // a download link: what it holds
            entry.head = (await (await fetch(eye.getAttribute('href'))).text()).split('\n').slice(0, 2);
          } else if (eye) {
            eye.click(); await sleep(400);
            const img = content().querySelector('img');
            const frame = content().querySelector('iframe, embed, object');
            if (img) { for (let i = 0; i < 20 && !img.complete; i++) await sleep(100); entry.img = {width: img.naturalWidth, height: img.naturalHeight, src: img.src.slice(0, 22)}; }
            if (frame) entry.frame = (frame.src || frame.data || '').slice(0, 30);
            entry.text = content().innerText.slice(0, 300);
          }
          shown[rows[r]] = entry;
        }
      }
    }
    report({done: true, ruleGraph});
  } catch (err) {
    report({error: String(err && err.stack || err)});
  }
})();
