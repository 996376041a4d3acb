// User settings in replicated statements and SET. The allow-list lives here (issue 22, "no poison
// entries"); this stub accepts every setting so the write-path rules can call it already.

import type { SettingValue } from './ast.js';

/** Throws RuleError when a setting may not be used there ('statement': a statement's SETTINGS / URL; 'set': SET). */
export function checkSettings(settings: Readonly<Record<string, SettingValue>>, where: 'statement' | 'set'): void {
  void settings;
  void where;
}
