#pragma once
// Test fixtures written with the same libraries micle reads with: libpng, libjpeg, DCMTK.
#include <dcmtk/dcmdata/dctk.h>
#include <jpeglib.h>
#include <png.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "micle/core/rng.hpp"

namespace micle::testing {

/// A fresh folder under the system's temporary directory, removed with its contents.
struct scratch {
    std::filesystem::path dir;
    explicit scratch(const std::string& tag) {
        static int n = 0;
        dir = std::filesystem::temp_directory_path() / ("micle-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        std::filesystem::create_directories(dir);
    }
    scratch(const scratch&) = delete;
    scratch& operator=(const scratch&) = delete;
    ~scratch() { std::filesystem::remove_all(dir); }
};

/// Interleaved samples, 8-bit (values < 256) or 16-bit, 1 (grey), 2 (grey + alpha), 3 (RGB)
/// or 4 (RGBA) channels; `idat_bytes` > 0 splits the image data into IDAT chunks of that
/// size (libpng's default is 8 KiB); `filters` (PNG_FILTER_SUB, ...) > 0 restricts the row
/// filters libpng may choose (by default it picks per row among all five).
inline void write_png(const std::filesystem::path& path, int w, int h, int channels, int bits,
                      const std::vector<std::uint16_t>& samples, std::size_t idat_bytes = 0, int filters = 0) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write " + path.string());
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        std::fclose(f);
        throw std::runtime_error("libpng failed writing " + path.string());
    }
    png_init_io(png, f);
    if (idat_bytes > 0) png_set_compression_buffer_size(png, idat_bytes);
    if (filters > 0) png_set_filter(png, PNG_FILTER_TYPE_BASE, filters);
    const int color = channels == 1   ? PNG_COLOR_TYPE_GRAY
                      : channels == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
                      : channels == 3 ? PNG_COLOR_TYPE_RGB
                                      : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(png, info, png_uint_32(w), png_uint_32(h), bits, color, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    std::vector<std::uint8_t> row(std::size_t(w * channels * (bits / 8)));
    for (int y = 0; y < h; ++y) {
        for (int i = 0; i < w * channels; ++i) {
            const auto v = samples[std::size_t(y * w * channels + i)];
            if (bits == 16) {
                row[std::size_t(2 * i)] = std::uint8_t(v >> 8);  // PNG is big-endian
                row[std::size_t(2 * i + 1)] = std::uint8_t(v & 0xff);
            } else {
                row[std::size_t(i)] = std::uint8_t(v);
            }
        }
        png_write_row(png, row.data());
    }
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
}

inline void write_jpeg(const std::filesystem::path& path, int w, int h, int channels, const std::vector<std::uint8_t>& samples,
                       int quality = 95) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write " + path.string());
    jpeg_compress_struct cinfo;
    jpeg_error_mgr err;
    cinfo.err = jpeg_std_error(&err);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = JDIMENSION(w);
    cinfo.image_height = JDIMENSION(h);
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = const_cast<JSAMPLE*>(samples.data() + std::size_t(cinfo.next_scanline) * std::size_t(w * channels));
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    std::fclose(f);
}

struct dicom_spec {
    int width = 4, height = 3;
    std::string photometric = "MONOCHROME2";
    int bits_stored = 12;
    double slope = 1.0, intercept = 0.0;
    double window_center = 0, window_width = 0;  // width 0: no window in the file
    std::string patient_id = "P001";
};

inline void write_dicom(const std::filesystem::path& path, const dicom_spec& s, const std::vector<std::uint16_t>& pixels) {
    DcmFileFormat file;
    DcmDataset* d = file.getDataset();
    char uid[100];
    d->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
    d->putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
    d->putAndInsertString(DCM_PatientID, s.patient_id.c_str());
    d->putAndInsertString(DCM_Modality, "CR");
    d->putAndInsertString(DCM_PhotometricInterpretation, s.photometric.c_str());
    d->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    d->putAndInsertUint16(DCM_Rows, Uint16(s.height));
    d->putAndInsertUint16(DCM_Columns, Uint16(s.width));
    d->putAndInsertUint16(DCM_BitsAllocated, 16);
    d->putAndInsertUint16(DCM_BitsStored, Uint16(s.bits_stored));
    d->putAndInsertUint16(DCM_HighBit, Uint16(s.bits_stored - 1));
    d->putAndInsertUint16(DCM_PixelRepresentation, 0);
    d->putAndInsertString(DCM_RescaleSlope, std::to_string(s.slope).c_str());
    d->putAndInsertString(DCM_RescaleIntercept, std::to_string(s.intercept).c_str());
    if (s.window_width > 0) {
        d->putAndInsertString(DCM_WindowCenter, std::to_string(s.window_center).c_str());
        d->putAndInsertString(DCM_WindowWidth, std::to_string(s.window_width).c_str());
    }
    d->putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size());
    if (file.saveFile(path.c_str(), EXS_LittleEndianExplicit).bad()) throw std::runtime_error("DCMTK cannot write " + path.string());
}

/// A smooth scan-like image (low-frequency structure, as anatomy at 224 px is) with a
/// little seeded noise, interleaved, values in [0, max].
inline std::vector<std::uint16_t> scan(int w, int h, int channels, int max, std::uint64_t seed) {
    micle::rng gen(seed);
    std::vector<std::uint16_t> v(std::size_t(w * h * channels));
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < channels; ++c) {
                const double u = double(x) / w, t = double(y) / h;
                const double f = 0.5 + 0.25 * std::sin(6.0 * u + 2.0 * c) * std::cos(5.0 * t) + 0.15 * (u - t) +
                                 0.02 * (gen.uniform() - 0.5);
                v[std::size_t((y * w + x) * channels + c)] = std::uint16_t(std::clamp(f, 0.0, 1.0) * max);
            }
    return v;
}
inline std::vector<std::uint8_t> narrow(const std::vector<std::uint16_t>& v) { return {v.begin(), v.end()}; }

}  // namespace micle::testing
