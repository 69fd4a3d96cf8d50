import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { ROOT } from './process';
import { findTool, type ToolGate } from './tools';

/** Page globals, for the functions run in the browser (the project compiles without the DOM library). */
declare const document: any, window: any, navigator: any; // eslint-disable-line @typescript-eslint/no-explicit-any

// A real headless Chromium (Debian package `chromium`) driven by puppeteer-core, for the web UI tests.
// Every page records Content-Security-Policy violations and console errors, so a test can assert none.

export const CHROMIUM = '/usr/bin/chromium';
/** Screenshots go under the test output (.tap/ is not committed). */
export const SCREENSHOTS = path.join(ROOT, '.tap', 'ui-screenshots');

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };

export interface Tab {
  page: Page;
  /** CSP violations and console errors seen so far. */
  problems: string[];
  screenshot(name: string): Promise<void>;
}

export async function launchBrowser(t: ToolGate & { teardown(fn: () => unknown): void }): Promise<Browser | undefined> {
  if (!findTool(CHROMIUM)) {
    const msg = `${CHROMIUM} not installed (Debian package chromium; .ci/run installs it)`;
    if (process.env.CI) t.fail(msg, {});
    else t.pass(`skip: ${msg}`, {});
    return undefined;
  }
  const puppeteer = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** A new page (its own incognito context, so its cookies are its own). */
export async function openTab(browser: Browser, label: string): Promise<Tab> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await page.setViewport(DESKTOP);
  const problems: string[] = [];
  await page.evaluateOnNewDocument(() => {
    document.addEventListener('securitypolicyviolation', (e: { violatedDirective: string; blockedURI: string }) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (401|403|404|429)/.test(m.text())) problems.push(`${label}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${label}: page error ${String(e)}`));
  mkdirSync(SCREENSHOTS, { recursive: true });
  const screenshot = async (name: string) => {
    await page.setViewport(DESKTOP);
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-desktop.png`), fullPage: true });
    await page.setViewport(PHONE);
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-phone.png`), fullPage: true });
    await page.setViewport(DESKTOP);
  };
  return { page, problems, screenshot };
}
