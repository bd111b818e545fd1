import { PermanentJobError } from '../shared/errors.js';

/**
 * A permanent failure whose tool output (stderr) is kept for the logs only: `message` says in
 * plain words what is wrong with the file, `detail` is what the tool printed.
 */
export class ToolFailure extends PermanentJobError {
  constructor(
    message: string,
    code: string,
    readonly detail: string,
  ) {
    super(message, code);
    this.name = 'ToolFailure';
  }
}
