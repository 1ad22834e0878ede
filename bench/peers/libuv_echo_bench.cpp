// libuv_echo_bench — peer for the echo rows of bench_backends: a TCP echo server
// written directly on libuv (uv_tcp_t, uv_read_start, uv_write), measured by the
// same client and meter (bench/echo_client.hpp). Rows are labelled @libuv_raw.
//
// Some facts about libuv this relies on:
// - uv_read_start keeps reading until uv_read_stop or close; alloc_cb is asked for a
//   buffer before each read, read_cb gets it back with the byte count (or UV_EOF /
//   an error, or 0 for EAGAIN).
// - uv_write tries the write at once when the stream has no queued writes, but the
//   buffer must stay valid until write_cb. So each read lands in a write request
//   taken from a per-connection free list, which goes back to the list in write_cb:
//   no allocation once the list has warmed up, as a careful libuv program does.
// - uv_async_send is the only thread-safe call; the meter thread uses it to stop the
//   loop, whose callback closes every handle so uv_run returns.
//
// Output: RESULT echo_d<depth>_{msgs_per_s,user_ns,cpu_ns}@libuv_raw lines on stdout.
// Usage: libuv_echo_bench [echo options] (see echo_client.hpp).

#include "echo_client.hpp"

#include <uv.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(int rc, const char* what) {
    if (rc < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(rc));
}

struct write_request {
    uv_write_t req;
    write_request* next;
    char data[echo_bench::server_buffer_size];
};

struct connection {
    uv_tcp_t tcp;
    write_request* free = nullptr;     // reusable requests
    write_request* reading = nullptr;  // handed out by alloc_cb, not yet used by read_cb
    int writes_in_flight = 0;
    bool closing = false;
    connection* prev = nullptr;
    connection* next = nullptr;
};

struct server {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    connection* conns = nullptr;  // every open connection, for the stop callback
};

void release(connection* c, write_request* w) {
    w->next = c->free;
    c->free = w;
}

void free_connection(connection* c) {
    while (c->free) {
        write_request* w = c->free;
        c->free = w->next;
        delete w;
    }
    delete c->reading;
    delete c;
}

void on_closed(uv_handle_t* h) {
    auto* c = static_cast<connection*>(h->data);
    // A write still in flight got UV_ECANCELED before this callback; its request
    // is back on the free list by now.
    free_connection(c);
}

void close_connection(server* s, connection* c) {
    if (c->closing) return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_closed);
}

void on_alloc(uv_handle_t* h, size_t, uv_buf_t* out) {
    auto* c = static_cast<connection*>(h->data);
    write_request* w = c->reading;
    if (!w) {
        if (c->free) {
            w = c->free;
            c->free = w->next;
        } else {
            w = new write_request;
        }
        c->reading = w;
    }
    *out = uv_buf_init(w->data, sizeof w->data);
}

void on_written(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<write_request*>(req);
    auto* c = static_cast<connection*>(req->handle->data);
    --c->writes_in_flight;
    release(c, w);
    if (status < 0 && !c->closing) close_connection(static_cast<server*>(c->tcp.loop->data), c);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
    auto* c = static_cast<connection*>(stream->data);
    auto* s = static_cast<server*>(stream->loop->data);
    if (nread == 0) return;  // EAGAIN: the buffer stays in c->reading for next time
    if (nread < 0) {         // UV_EOF or an error
        close_connection(s, c);
        return;
    }
    write_request* w = c->reading;
    c->reading = nullptr;
    uv_buf_t b = uv_buf_init(w->data, static_cast<unsigned>(nread));
    ++c->writes_in_flight;
    int rc = uv_write(&w->req, stream, &b, 1, on_written);
    if (rc < 0) {
        --c->writes_in_flight;
        release(c, w);
        close_connection(s, c);
    }
}

void on_connection(uv_stream_t* listener, int status) {
    if (status < 0) return;
    auto* s = static_cast<server*>(listener->loop->data);
    auto* c = new connection;
    uv_tcp_init(&s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
        uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_closed);
        return;
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), on_alloc, on_read) != 0)
        close_connection(s, c);
}

void on_stop(uv_async_t* a) {
    auto* s = static_cast<server*>(a->loop->data);
    while (s->conns) close_connection(s, s->conns);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->listener), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->stop), nullptr);
}

std::vector<echo_bench::depth_result> run(echo_bench::client_process& client,
                                          const echo_bench::config& cfg) {
    server s;
    check(uv_loop_init(&s.loop), "uv_loop_init");
    s.loop.data = &s;
    check(uv_tcp_init(&s.loop, &s.listener), "uv_tcp_init");
    sockaddr_in addr{};
    check(uv_ip4_addr("127.0.0.1", 0, &addr), "uv_ip4_addr");
    check(uv_tcp_bind(&s.listener, reinterpret_cast<const sockaddr*>(&addr), 0), "uv_tcp_bind");
    check(uv_listen(reinterpret_cast<uv_stream_t*>(&s.listener), SOMAXCONN, on_connection),
          "uv_listen");
    int len = sizeof addr;
    check(uv_tcp_getsockname(&s.listener, reinterpret_cast<sockaddr*>(&addr), &len),
          "uv_tcp_getsockname");
    check(uv_async_init(&s.loop, &s.stop, on_stop), "uv_async_init");

    echo_bench::session meter(client, ntohs(addr.sin_port), cfg, "libuv_raw",
                              [&s] { uv_async_send(&s.stop); });
    uv_run(&s.loop, UV_RUN_DEFAULT);  // returns once on_stop closed every handle
    check(uv_loop_close(&s.loop), "uv_loop_close");
    return meter.finish();
}

}  // namespace

int main(int argc, char** argv) {
    return echo_bench::peer_main(argc, argv, "libuv_echo_bench", "libuv_raw",
                                 std::string("libuv ") + uv_version_string(), run);
}
