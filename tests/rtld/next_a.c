/* The "real" definition that an interposer finds with dlsym(RTLD_NEXT). */
int next_fn(void);
int next_fn(void) { return 2; }
int dep_fn(void);
int dep_fn(void) { return 40; }
