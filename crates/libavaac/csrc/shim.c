/*
 * AAC-LC encoding through libavcodec's native "aac" encoder, behind four plain C
 * functions. Every libavcodec struct is touched here only, compiled against the
 * headers of the libavcodec that is linked, so Rust never declares a struct layout.
 *
 * Contract with src/lib.rs (which upholds it):
 *  - sluice_aac_new returns NULL or an encoder owned by the caller until sluice_aac_free.
 *  - sluice_aac_send's `planar` points to `channels` arrays of `nb_samples` floats,
 *    nb_samples <= frame size; NULL with nb_samples 0 flushes.
 *  - sluice_aac_receive writes at most `cap` bytes to `out`.
 */
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <string.h>

struct sluice_aac {
    AVCodecContext *ctx;
    AVFrame *frame;
    AVPacket *pkt;
};

static void set_err(char *err, size_t cap, const char *what, int code) {
    char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
    if (err == NULL || cap == 0) {
        return;
    }
    if (code != 0) {
        av_strerror(code, msg, sizeof msg);
    }
    snprintf(err, cap, "%s%s%s", what, code != 0 ? ": " : "", msg);
}

void sluice_aac_free(struct sluice_aac *e) {
    if (e == NULL) {
        return;
    }
    av_packet_free(&e->pkt);
    av_frame_free(&e->frame);
    avcodec_free_context(&e->ctx);
    av_free(e);
}

struct sluice_aac *sluice_aac_new(int rate, int channels, int bitrate, char *err, size_t errcap) {
    const AVCodec *codec = avcodec_find_encoder_by_name("aac");
    struct sluice_aac *e;
    int r;
    if (codec == NULL) {
        set_err(err, errcap, "libavcodec has no \"aac\" encoder", 0);
        return NULL;
    }
    if (channels < 1 || channels > 2 || rate < 8000 || rate > 96000) {
        set_err(err, errcap, "unsupported rate or channel count", 0);
        return NULL;
    }
    /* The encoder's statistics ("Qavg") are not for a server's log; errors come back as
     * return codes. (Process-wide, and libavcodec is used by nothing else in sluice.) */
    av_log_set_level(AV_LOG_ERROR);
    e = av_mallocz(sizeof *e);
    if (e == NULL) {
        set_err(err, errcap, "out of memory", 0);
        return NULL;
    }
    e->ctx = avcodec_alloc_context3(codec);
    e->frame = av_frame_alloc();
    e->pkt = av_packet_alloc();
    if (e->ctx == NULL || e->frame == NULL || e->pkt == NULL) {
        set_err(err, errcap, "out of memory", 0);
        sluice_aac_free(e);
        return NULL;
    }
    e->ctx->sample_fmt = AV_SAMPLE_FMT_FLTP;
    e->ctx->sample_rate = rate;
    e->ctx->bit_rate = bitrate;
    e->ctx->profile = FF_PROFILE_AAC_LOW;
    e->ctx->time_base = (AVRational){1, rate};
    /* The AudioSpecificConfig goes in extradata (the FLV sequence header), not in ADTS. */
    e->ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_channel_layout_default(&e->ctx->ch_layout, channels);
    r = avcodec_open2(e->ctx, codec, NULL);
    if (r < 0) {
        set_err(err, errcap, "avcodec_open2(aac)", r);
        sluice_aac_free(e);
        return NULL;
    }
    e->frame->format = AV_SAMPLE_FMT_FLTP;
    e->frame->sample_rate = rate;
    e->frame->nb_samples = e->ctx->frame_size;
    r = av_channel_layout_copy(&e->frame->ch_layout, &e->ctx->ch_layout);
    if (r >= 0) {
        r = av_frame_get_buffer(e->frame, 0);
    }
    if (r < 0) {
        set_err(err, errcap, "av_frame_get_buffer", r);
        sluice_aac_free(e);
        return NULL;
    }
    return e;
}

int sluice_aac_frame_size(const struct sluice_aac *e) {
    return e->ctx->frame_size;
}

/* The AudioSpecificConfig: its length, and *data pointing into the encoder. */
int sluice_aac_extradata(const struct sluice_aac *e, const uint8_t **data) {
    *data = e->ctx->extradata;
    return e->ctx->extradata == NULL ? 0 : e->ctx->extradata_size;
}

/* 0 when taken, AVERROR(EAGAIN) when packets must be received first, <0 on error. */
int sluice_aac_send(struct sluice_aac *e, const float *planar, int nb_samples, int64_t pts) {
    int r, c, channels = e->ctx->ch_layout.nb_channels;
    if (planar == NULL || nb_samples == 0) {
        return avcodec_send_frame(e->ctx, NULL);
    }
    if (nb_samples < 0 || nb_samples > e->ctx->frame_size) {
        return AVERROR(EINVAL);
    }
    /* The encoder may still hold the previous frame's buffers: get writable ones. */
    r = av_frame_make_writable(e->frame);
    if (r < 0) {
        return r;
    }
    e->frame->nb_samples = nb_samples;
    for (c = 0; c < channels; c++) {
        memcpy(e->frame->extended_data[c], planar + (size_t)c * (size_t)nb_samples,
               (size_t)nb_samples * sizeof(float));
    }
    e->frame->pts = pts;
    return avcodec_send_frame(e->ctx, e->frame);
}

/*
 * One packet: its size (> 0) with its pts in *pts, 0 when the encoder needs more input
 * (or is flushed), < 0 on error (AVERROR(ENOSPC) when it does not fit in cap).
 */
int sluice_aac_receive(struct sluice_aac *e, uint8_t *out, int cap, int64_t *pts) {
    int size, r = avcodec_receive_packet(e->ctx, e->pkt);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) {
        return 0;
    }
    if (r < 0) {
        return r;
    }
    size = e->pkt->size;
    if (size > cap || size <= 0) {
        av_packet_unref(e->pkt);
        return size <= 0 ? 0 : AVERROR(ENOSPC);
    }
    memcpy(out, e->pkt->data, (size_t)size);
    *pts = e->pkt->pts;
    av_packet_unref(e->pkt);
    return size;
}

int sluice_aac_eagain(void) {
    return AVERROR(EAGAIN);
}
