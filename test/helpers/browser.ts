// The browser for the console's tests: Debian's Chromium through playwright-core, shared with the
// screenshot script (scripts/lib/chromium.ts). Skipped, with the reason, where none is installed.
export { findChromium, launchChromium, skipWithoutChromium } from '../../scripts/lib/chromium.ts';
