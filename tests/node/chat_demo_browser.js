// The browser half of tests/integration/test_chat_demo.py: Debian's chromium
// (headless, driven by playwright-core, never a downloaded browser) uses the
// demo chat page the way a person would, through the Sluice the test started,
// and reports what each page showed. The Python side asserts on the report
// and on Sluice's logs; this script only drives the pages and waits for what
// a person would wait for, on the page's own DOM (demo/static/app.js):
// #state, the #log items (data-kind, data-event, data-from), and #close
// (data-code, data-reason, data-clean).
//
//   node tests/node/chat_demo_browser.js '{"alice": URL, "bob": URL,
//       "outsider": URL, "screenshot": PATH, "timeout_ms": N}'
//
// alice and bob load the page from allowed origins and talk; alice then sends
// 2 MiB; outsider loads it from an origin the route does not allow. Prints
// one JSON line on stdout (the report) and progress on stderr; exits 1 when a
// wait runs out or the browser fails, after closing the browser.
'use strict';

const path = require('path');
const { chromium } = require(path.join(__dirname, 'node_modules', 'playwright-core'));

const CHROMIUM = '/usr/bin/chromium';
const opts = JSON.parse(process.argv[2] || '{}');
const timeout = opts.timeout_ms || 20000;
const pages = {};  // name -> page, for the failure report

function step(text) {
  process.stderr.write(`browser: ${text}\n`);
}

// What a page shows, read from its DOM.
async function observe(page) {
  return page.evaluate(() => {
    const close = document.getElementById('close');
    const items = [...document.querySelectorAll('#log li')];
    return {
      state: document.getElementById('state').textContent,
      events: items.filter((li) => li.dataset.event).map((li) => li.dataset.event),
      chat: items.filter((li) => li.dataset.kind.startsWith('chat'))
        .map((li) => ({ from: li.dataset.from || null, text: li.textContent })),
      system: items.filter((li) => li.dataset.kind === 'system').map((li) => li.textContent),
      close: close.dataset.code === undefined ? null : {
        code: Number(close.dataset.code),
        reason: close.dataset.reason,
        clean: close.dataset.clean === 'true',
        text: close.textContent,
      },
    };
  });
}

// Each person gets a browser context of their own (no shared cookies or
// cache); console lines are kept, since the refused handshake's status code
// appears only there.
async function openPage(browser, name, url) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.console = [];
  page.on('console', (msg) => page.console.push(msg.text()));
  pages[name] = page;
  step(`${name} opens ${url}`);
  await page.goto(url);
  await page.fill('#name', name);
  return page;
}

function waitState(page, state) {
  return page.waitForFunction((s) => document.getElementById('state').textContent === s, state);
}

function waitClosed(page) {
  return page.waitForFunction(() => document.getElementById('close').dataset.code !== undefined);
}

function waitChat(page, from, text) {
  return page.waitForFunction(([f, t]) => [...document.querySelectorAll('#log li[data-from]')]
    .some((li) => li.dataset.from === f && li.textContent.includes(t)), [from, text]);
}

function waitSystem(page, text) {
  return page.waitForFunction((t) => [...document.querySelectorAll('#log li.system')]
    .some((li) => li.textContent.includes(t)), text);
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
}

async function run(browser, report) {
  const alice = await openPage(browser, 'alice', opts.alice);
  const bob = await openPage(browser, 'bob', opts.bob);
  await waitState(alice, 'open');
  await waitState(bob, 'open');
  step('both pages are open');

  // Both are in the room once both are open: the chat server counts a client
  // before its 101 leaves, and a page opens only after that 101.
  await say(alice, 'hello from alice');
  await waitChat(bob, 'alice', 'hello from alice');
  await waitChat(alice, 'alice', 'hello from alice');
  await say(bob, 'hi alice, bob here');
  await waitChat(alice, 'bob', 'hi alice, bob here');
  await waitChat(bob, 'bob', 'hi alice, bob here');
  step('the messages went both ways');
  report.exchanged = { alice: await observe(alice), bob: await observe(bob) };

  // 2 MiB against the route's 1 MiB: Sluice closes alice with 1009 and the
  // chat server with 1001, which tells the room that someone left. Had the
  // message got through, bob would have it before that line.
  await alice.click('#send-big');
  await waitClosed(alice);
  await waitSystem(bob, 'someone left');
  step('the 2 MiB message was refused');
  report.big = { alice: await observe(alice), bob: await observe(bob) };
  await alice.screenshot({ path: opts.screenshot, fullPage: true });
  step(`screenshot: ${opts.screenshot}`);

  // A page from an origin that is not allowed: its handshake is refused.
  const outsider = await openPage(browser, 'outsider', opts.outsider);
  await waitClosed(outsider);
  step('the outsider page was refused');
  report.outsider = { ...(await observe(outsider)), console: outsider.console };

  await bob.click('#disconnect');
  await waitClosed(bob);
  report.bye = await observe(bob);
}

async function main() {
  const report = {};
  step(`launching ${CHROMIUM}`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root needs --no-sandbox; the demo certificate is self-signed.
    args: ['--no-sandbox', '--ignore-certificate-errors'],
    timeout,
  });
  report.browser = browser.version();
  try {
    await run(browser, report);
  } catch (err) {
    // What each page showed when the wait ran out says more than the timeout.
    for (const [name, page] of Object.entries(pages)) {
      const seen = await observe(page).catch((e) => `(cannot read the page: ${e.message})`);
      step(`${name} showed ${JSON.stringify(seen)}; console ${JSON.stringify(page.console)}`);
    }
    throw err;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((err) => {
  process.stderr.write(`browser: ${err.stack || err}\n`);
  process.exit(1);
});
