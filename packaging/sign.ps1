# Sign the app folder's programs and libraries, or the installer, with signtool (.github/workflows/windows.yml):
#   pwsh packaging\sign.ps1 dist\riffstudio          then, after Inno Setup,   pwsh packaging\sign.ps1 dist\*-setup.exe
# Every .exe, .dll and .pyd under the paths that has no valid signature yet is signed: our two programs and
# the Python packages' unsigned libraries (Smart App Control blocks unsigned code it has no reputation for,
# libraries included); vendors' signed files (Python, Qt, ONNX Runtime, QNN) keep their own signatures. Each
# signature carries an RFC 3161 timestamp, so it stays valid after the certificate expires.
#
# The certificate comes from the environment, never the repository: SIGNING_CERTIFICATE (a code-signing PFX,
# base64) and SIGNING_PASSWORD, from the workflow's secrets. Without them nothing is signed (a notice says so),
# but the signing itself is still proven: a copy of riffstudio-cli.exe is signed with a throwaway self-signed
# certificate and must still run (PyInstaller's programs carry their archive after the image, where the
# signature goes too).
param([string[]]$Paths = @())
$ErrorActionPreference = "Stop"
$Timestamp = "http://timestamp.digicert.com"

function Find-SignTool {
    $found = Get-ChildItem "${env:ProgramFiles(x86)}\Windows Kits\10\bin\*\x64\signtool.exe" -ErrorAction SilentlyContinue |
        Sort-Object FullName -Descending | Select-Object -First 1
    if (-not $found) { throw "signtool.exe not found: install the Windows SDK's signing tools" }
    return $found.FullName
}

function Get-Unsigned([string[]]$From) {
    $files = foreach ($path in $From) {
        if (Test-Path $path -PathType Leaf) { Get-Item $path }
        else { Get-ChildItem $path -Recurse -File -Include *.exe, *.dll, *.pyd }
    }
    return @($files | Where-Object { (Get-AuthenticodeSignature $_.FullName).Status -ne "Valid" })
}

function Invoke-Signing([string]$SignTool, [string]$Thumbprint, [object[]]$Files) {
    # In batches: a command line holds some 32,000 characters.
    for ($i = 0; $i -lt $Files.Count; $i += 50) {
        $batch = @($Files[$i..([Math]::Min($i + 49, $Files.Count - 1))] | ForEach-Object { $_.FullName })
        & $SignTool sign /sha1 $Thumbprint /s My /fd SHA256 /tr $Timestamp /td SHA256 /d Riffstudio $batch
        if ($LASTEXITCODE -ne 0) { throw "signtool sign failed (exit code $LASTEXITCODE)" }
    }
}

$present = @($Paths | Where-Object { $_ -and (Test-Path $_) })
if ($present.Count -eq 0) {
    Write-Output "::notice title=nothing to sign::none of $($Paths -join ', ') exists"
    exit 0
}
$signTool = Find-SignTool

if (-not $env:SIGNING_CERTIFICATE) {
    Write-Output "::notice title=unsigned::no signing certificate (secrets WINDOWS_SIGNING_CERTIFICATE and WINDOWS_SIGNING_PASSWORD): $($present -join ', ') stay unsigned; SmartScreen and Smart App Control will warn (docs/windows.md)"
    $cli = Get-ChildItem $present -Recurse -File -Filter riffstudio-cli.exe -ErrorAction SilentlyContinue | Select-Object -First 1
    if (-not $cli) { exit 0 }
    $throwaway = New-SelfSignedCertificate -Type CodeSigningCert -Subject "CN=Riffstudio signing check" `
        -CertStoreLocation Cert:\CurrentUser\My -NotAfter (Get-Date).AddDays(1)
    $copy = Join-Path $cli.DirectoryName "riffstudio-cli-signed-check.exe"
    try {
        Copy-Item $cli.FullName $copy
        Invoke-Signing $signTool $throwaway.Thumbprint @(Get-Item $copy)
        $signature = Get-AuthenticodeSignature $copy
        if ($signature.SignerCertificate.Thumbprint -ne $throwaway.Thumbprint) { throw "the signed copy carries no signature" }
        $version = & $copy --version
        if ($LASTEXITCODE -ne 0) { throw "the signed copy of riffstudio-cli.exe does not run (exit code $LASTEXITCODE)" }
        Write-Output "signing checked with a throwaway certificate: a signed riffstudio-cli.exe runs ($version)"
    } finally {
        Remove-Item $copy -Force -ErrorAction SilentlyContinue
        Remove-Item "Cert:\CurrentUser\My\$($throwaway.Thumbprint)" -Force -ErrorAction SilentlyContinue
    }
    exit 0
}

$pfx = Join-Path ([IO.Path]::GetTempPath()) "riffstudio-signing-$PID.pfx"
$certificate = $null
try {
    [IO.File]::WriteAllBytes($pfx, [Convert]::FromBase64String($env:SIGNING_CERTIFICATE))
    $password = if ($env:SIGNING_PASSWORD) { ConvertTo-SecureString $env:SIGNING_PASSWORD -AsPlainText -Force }
                else { New-Object System.Security.SecureString }  # a PFX without a password
    $certificate = Import-PfxCertificate -FilePath $pfx -CertStoreLocation Cert:\CurrentUser\My -Password $password
    $unsigned = Get-Unsigned $present
    Write-Output "signing $($unsigned.Count) file(s) under $($present -join ', ')"
    if ($unsigned.Count -gt 0) {
        Invoke-Signing $signTool $certificate.Thumbprint $unsigned
        $stillUnsigned = Get-Unsigned $present
        if ($stillUnsigned.Count -gt 0) { throw "still unsigned after signing: $($stillUnsigned[0].FullName)" }
    }
} finally {
    Remove-Item $pfx -Force -ErrorAction SilentlyContinue
    if ($certificate) { Remove-Item "Cert:\CurrentUser\My\$($certificate.Thumbprint)" -Force -ErrorAction SilentlyContinue }
}
