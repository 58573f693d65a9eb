/* The terminal for gpumem top, with termios and ANSI escapes only (no
 * curses): what works in any xterm-alike, over SSH, in tmux and screen.
 * Signals are turned into bytes on a self-pipe, so the wait loop sees them
 * with no race against poll(). */
#include "top.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static struct {
    int active;
    int in;                     /* keys: stdin, or /dev/tty when stdin is redirected */
    int own_in;
    struct termios saved;
    int pipe[2];
} tt = {0, -1, 0, {0}, {-1, -1}};

#define ENTER_SEQ "\033[?1049h\033[?25l\033[H\033[2J"
#define LEAVE_SEQ "\033[m\033[?25h\033[?1049l"

static void on_signal(int sig)
{
    int saved = errno;
    char c = sig == SIGWINCH ? 'w' : sig == SIGTSTP ? 'z' : 'q';
    if (tt.pipe[1] >= 0 && write(tt.pipe[1], &c, 1) < 0) {
        /* pipe full: an event of this kind is already pending */
    }
    errno = saved;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void top_term_write(const char *p, size_t n) { write_all(STDOUT_FILENO, p, n); }

static int raw_on(void)
{
    struct termios t = tt.saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
    t.c_iflag &= ~(tcflag_t)(IXON | ICRNL | INLCR | IGNCR);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(tt.in, TCSAFLUSH, &t) < 0)
        return -1;
    top_term_write(ENTER_SEQ, sizeof ENTER_SEQ - 1);
    return 0;
}

static void raw_off(void)
{
    top_term_write(LEAVE_SEQ, sizeof LEAVE_SEQ - 1);
    tcsetattr(tt.in, TCSAFLUSH, &tt.saved);
}

static void catch(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

int top_term_enter(char *err, size_t errlen)
{
    tt.in = STDIN_FILENO;
    if (!isatty(tt.in)) {
        tt.in = open("/dev/tty", O_RDONLY | O_CLOEXEC);
        if (tt.in < 0) {
            snprintf(err, errlen, "no terminal to read keys from: /dev/tty: %s", strerror(errno));
            return -1;
        }
        tt.own_in = 1;
    }
    if (tcgetattr(tt.in, &tt.saved) < 0) {
        snprintf(err, errlen, "cannot read the terminal's settings: %s", strerror(errno));
        return -1;
    }
    if (pipe2(tt.pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    catch(SIGINT);
    catch(SIGTERM);
    catch(SIGHUP);
    catch(SIGWINCH);
    catch(SIGTSTP);
    if (raw_on() < 0) {
        snprintf(err, errlen, "cannot set the terminal to raw input: %s", strerror(errno));
        return -1;
    }
    tt.active = 1;
    return 0;
}

void top_term_leave(void)
{
    if (!tt.active)
        return;
    tt.active = 0;
    raw_off();
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGWINCH, SIG_DFL);
    signal(SIGTSTP, SIG_DFL);
    if (tt.own_in)
        close(tt.in);
}

void top_term_size(int *rows, int *cols)
{
    struct winsize ws;
    *rows = 24;
    *cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    }
}

/* ^Z: put the terminal back, stop, and take it again when continued. */
static void suspend(void)
{
    raw_off();
    signal(SIGTSTP, SIG_DFL);
    raise(SIGTSTP);
    /* continued */
    catch(SIGTSTP);
    tcgetattr(tt.in, &tt.saved);
    raw_on();
}

/* Decodes what one read() returned: plain bytes, and the CSI / SS3 forms
 * of the arrows, PgUp/PgDn, Home/End. A lone ESC is dropped. */
static int decode(const unsigned char *b, size_t n, int *keys, int max)
{
    int k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        if (b[i] == '\r' || b[i] == '\n') {
            keys[k++] = TOP_KEY_ENTER;
            continue;
        }
        if (b[i] != 0x1b) {
            keys[k++] = b[i];
            continue;
        }
        if (i + 2 >= n)
            continue;
        if (b[i + 1] != '[' && b[i + 1] != 'O')
            continue;
        size_t j = i + 2;
        unsigned num = 0;
        while (j < n && b[j] >= '0' && b[j] <= '9')
            num = num * 10 + (unsigned)(b[j++] - '0');
        while (j < n && b[j] == ';') /* modifiers: ignored */
            j++;
        while (j < n && b[j] >= '0' && b[j] <= '9')
            j++;
        if (j >= n)
            break;
        switch (b[j]) {
        case 'A': keys[k++] = TOP_KEY_UP; break;
        case 'B': keys[k++] = TOP_KEY_DOWN; break;
        case 'H': keys[k++] = TOP_KEY_HOME; break;
        case 'F': keys[k++] = TOP_KEY_END; break;
        case 'M': keys[k++] = TOP_KEY_ENTER; break; /* keypad Enter (SS3 M) */
        case '~':
            if (num == 5)
                keys[k++] = TOP_KEY_PGUP;
            else if (num == 6)
                keys[k++] = TOP_KEY_PGDN;
            else if (num == 1 || num == 7)
                keys[k++] = TOP_KEY_HOME;
            else if (num == 4 || num == 8)
                keys[k++] = TOP_KEY_END;
            break;
        default: break;
        }
        i = j;
    }
    return k;
}

int top_term_wait(int timeout_ms, int *keys, int max, int *events)
{
    struct pollfd p[2] = {{tt.in, POLLIN, 0}, {tt.pipe[0], POLLIN, 0}};
    *events = 0;
    int r = poll(p, 2, timeout_ms);
    if (r <= 0)
        return 0;
    if (p[1].revents & POLLIN) {
        char c[16];
        ssize_t n = read(tt.pipe[0], c, sizeof c);
        for (ssize_t i = 0; i < n; i++) {
            if (c[i] == 'q')
                *events |= TOP_EV_QUIT;
            else if (c[i] == 'w')
                *events |= TOP_EV_RESIZE;
            else if (c[i] == 'z') {
                suspend();
                *events |= TOP_EV_RESIZE;
            }
        }
    }
    if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
        *events |= TOP_EV_QUIT;      /* the terminal went away */
        return 0;
    }
    if (p[0].revents & POLLIN) {
        unsigned char b[256];
        ssize_t n = read(tt.in, b, sizeof b);
        if (n == 0)
            *events |= TOP_EV_QUIT;
        if (n > 0)
            return decode(b, (size_t)n, keys, max);
    }
    return 0;
}
