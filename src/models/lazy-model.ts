/** A model loaded on first use and kept: one load shared by concurrent first calls, tried again after a failed one. */
export class LazyModel<T> {
  private loading: Promise<T> | undefined;
  /** How long the load took (ms), once loaded. */
  loadMs: number | undefined;

  constructor(
    /** Its name in warmUp's answer and in stats, e.g. 'coco-ssd'. */
    readonly name: string,
    private readonly load: () => Promise<T>,
  ) {}

  get(): Promise<T> {
    if (!this.loading) {
      const started = performance.now();
      const loading = this.load().then((model) => {
        this.loadMs = Math.round(performance.now() - started);
        return model;
      });
      loading.catch(() => {
        if (this.loading === loading) this.loading = undefined;
      });
      this.loading = loading;
    }
    return this.loading;
  }
}
