#pragma once
// DICOM decoding with DCMTK (Debian's libdcmtk-dev): MONOCHROME1 and MONOCHROME2, 8 to 16
// bits, rescale slope/intercept (modality LUT), and a VOI window - given by the caller,
// else the file's first window, else the image's min-max range - mapped to [0, 1] with
// 16-bit precision. MONOCHROME1 (bright = low values) is inverted so that bright is 1 in
// every output. Compressed transfer syntaxes that DCMTK's registered codecs handle (JPEG
// baseline/lossless, JPEG-LS) are decoded too.
//
// Memory follows the file (limits.hpp): before DCMTK builds the image, the header's Rows x
// Columns must be within the pixel limit, uncompressed pixel data must hold every frame
// the header promises (DCMTK would otherwise allocate them all and pad with zeros), and
// compressed pixel data may expand at most `dicom_max_pixels_per_byte` pixels per byte of
// file. Only the first frame is decoded.
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmimgle/dcmimage.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include "micle/data/image.hpp"
#include "micle/data/limits.hpp"

namespace micle::data {

struct dicom_options {
    std::optional<double> window_center, window_width;  ///< both or neither, in rescaled units
};

/// Compressed (encapsulated) pixel data may not promise more pixels than this per byte of
/// file: far beyond what JPEG (at most 512) or JPEG-LS reach on any real image, and a
/// bound on what a few bytes with a forged Rows x Columns can cost.
inline constexpr std::uint64_t dicom_max_pixels_per_byte = 4096;

namespace dicom_detail {
inline void register_codecs() {
    static std::once_flag once;
    std::call_once(once, [] {
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
    });
}
}  // namespace dicom_detail

/// Checks the dimensions the header promises against the limit and the pixel data it
/// holds, before any pixel buffer is allocated.
inline void check_dicom_size(DcmDataset& ds, const std::string& name, const decode_limits& limits) {
    Uint16 rows = 0, cols = 0, spp = 1, bits = 0;
    ds.findAndGetUint16(DCM_Rows, rows);
    ds.findAndGetUint16(DCM_Columns, cols);
    ds.findAndGetUint16(DCM_SamplesPerPixel, spp);
    ds.findAndGetUint16(DCM_BitsAllocated, bits);
    Sint32 frames = 1;
    if (ds.findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames < 1) frames = 1;
    check_image_pixels(limits, name, cols, rows);
    DcmElement* pd = nullptr;
    if (ds.findAndGetElement(DCM_PixelData, pd).bad() || !pd) return;  // DicomImage reports it
    const std::uint64_t pixels = std::uint64_t(rows) * cols;
    if (DcmXfer(ds.getOriginalXfer()).isEncapsulated()) {
        std::error_code ec;
        const auto file_size = std::filesystem::file_size(name, ec);
        if (!ec && pixels > dicom_max_pixels_per_byte * file_size)
            throw data_error(micle::detail::cat(name, ": corrupt DICOM: Rows x Columns = ", rows, " x ", cols,
                                                " promise more pixels than ", file_size,
                                                " bytes of compressed pixel data can hold (at most ",
                                                dicom_max_pixels_per_byte, " per byte)"));
        return;
    }
    const std::uint64_t need = (std::uint64_t(frames) * pixels * std::max<Uint16>(spp, 1) * bits + 7) / 8;
    const std::uint64_t have = pd->getLength();
    if (have < need)
        throw data_error(micle::detail::cat(name, ": corrupt DICOM: pixel data holds ", have, " bytes, but ", frames,
                                            " frame(s) of ", rows, " x ", cols, " x ", spp, " samples at ", bits,
                                            " bits need ", need));
}

/// The first frame, windowed and rendered to 16 bits (one channel, value / 65535).
inline source_image decode_dicom_source(const std::filesystem::path& path, const dicom_options& opt = {},
                                        const decode_limits& limits = {}) {
    dicom_detail::register_codecs();
    const std::string name = path.string();
    DcmFileFormat file;
    const OFCondition st = file.loadFile(path.c_str());
    if (st.bad()) throw data_error(micle::detail::cat(name, ": not a readable DICOM file (", st.text(), ")"));
    DcmDataset* ds = file.getDataset();
    OFString photometric;
    if (ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric).bad())
        throw data_error(micle::detail::cat(name, ": DICOM without PhotometricInterpretation"));
    if (photometric != "MONOCHROME1" && photometric != "MONOCHROME2")
        throw data_error(micle::detail::cat(name, ": photometric interpretation ", photometric.c_str(),
                                            " is not supported (MONOCHROME1/2 only)"));
    Uint16 stored = 0;
    ds->findAndGetUint16(DCM_BitsStored, stored);
    check_dicom_size(*ds, name, limits);
    DicomImage img(&file, ds->getOriginalXfer(), CIF_MayDetachPixelData, 0, 1);  // the first frame only
    if (img.getStatus() != EIS_Normal)
        throw data_error(micle::detail::cat(name, ": cannot decode the pixel data (", DicomImage::getString(img.getStatus()), ")"));
    if (!img.isMonochrome()) throw data_error(micle::detail::cat(name, ": not a monochrome image"));
    check<value_error>(opt.window_center.has_value() == opt.window_width.has_value(),
                       "decode_dicom: give both window centre and width, or neither");
    bool windowed = false;
    if (opt.window_center) {
        check<value_error>(*opt.window_width >= 1, "decode_dicom: window width must be >= 1, got ", *opt.window_width);
        windowed = img.setWindow(*opt.window_center, *opt.window_width) != 0;
    } else if (img.getWindowCount() > 0) {
        windowed = img.setWindow(0) != 0;
    }
    if (!windowed) img.setMinMaxWindow();
    // DCMTK renders presentation values: MONOCHROME1 comes out inverted to "bright = high".
    const auto width = static_cast<std::int64_t>(img.getWidth()), height = static_cast<std::int64_t>(img.getHeight());
    const auto* px = static_cast<const Uint16*>(img.getOutputData(16));
    if (!px) throw data_error(micle::detail::cat(name, ": rendering the pixel data failed"));
    std::vector<std::uint8_t> bytes(std::size_t(width * height) * 2);
    std::memcpy(bytes.data(), px, bytes.size());
    return source_image::adopt(std::move(bytes), 1, height, width, stored > 0 ? int(stored) : 16, 2);
}

/// The first frame as planar floats in [0, 1].
inline image decode_dicom(const std::filesystem::path& path, const dicom_options& opt = {}, const decode_limits& limits = {}) {
    return to_image(decode_dicom_source(path, opt, limits));
}

/// The PatientID of a DICOM file (empty when absent).
inline std::string dicom_patient_id(const std::filesystem::path& path) {
    DcmFileFormat file;
    if (file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096).bad())
        throw data_error(micle::detail::cat(path.string(), ": not a readable DICOM file"));
    OFString id;
    file.getDataset()->findAndGetOFString(DCM_PatientID, id);
    return id.c_str();
}

}  // namespace micle::data
