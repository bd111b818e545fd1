/** What the model methods accept, and the error for what they refuse. */

/** An input a model method cannot take (a file that is not a picture, a sound file that is not raw float32 PCM): message in plain words, no path. */
export class BadInput extends Error {
  constructor(
    message: string,
    readonly detail: string,
  ) {
    super(message);
    this.name = 'BadInput';
  }
}

export const NOT_A_PICTURE = 'The picture could not be read or decoded as an image.';

/** Pictures: the decompression-bomb guard of the image step's default (IMAGE_MAX_PIXELS). */
export const MAX_INPUT_PIXELS = 100_000_000;
