# Build the installer dist\riffstudio-<version>-windows-<arch>-setup.exe from the app folder dist\riffstudio\
# with Inno Setup (packaging\riffstudio.iss), installing Inno Setup through Chocolatey where a runner lacks it:
#   pwsh packaging\installer.ps1 arm64        (or x64: the app folder's own architecture)
param([Parameter(Mandatory = $true)][ValidateSet("arm64", "x64")][string]$Arch)
$ErrorActionPreference = "Stop"
$places = @("${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe", "$env:ProgramFiles\Inno Setup 6\ISCC.exe")
if (-not ($places | Where-Object { Test-Path $_ }) -and (Get-Command choco -ErrorAction SilentlyContinue)) {
    choco install innosetup --no-progress -y
}
$iscc = $places | Where-Object { Test-Path $_ } | Select-Object -First 1
if (-not $iscc) {
    Write-Output "::notice title=no installer::Inno Setup is not on this runner (nor Chocolatey to install it): no installer built"
    exit 0
}
$version = (Select-String -Path engine\version.py -Pattern '__version__ = "([^"]+)"').Matches[0].Groups[1].Value
& $iscc "/DArch=$Arch" "/DAppVersion=$version" packaging\riffstudio.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed (exit code $LASTEXITCODE)" }
